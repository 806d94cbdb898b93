//! The loss and F1 curves of a run, drawn from its `metrics.jsonl` as one PNG.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::trainer::read_log;
use crate::{Result, TrainError};

/// Fonts tried for the plot's text (Debian's fonts-dejavu-core, installed by the setup script).
const FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

fn register_font() -> std::result::Result<(), String> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = FONT_FILES
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .ok_or_else(|| format!("no font found (looked for {})", FONT_FILES.join(", ")))?;
            plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
                .map_err(|_| "the font file is not a usable TrueType font".to_owned())
        })
        .clone()
}

pub fn plot_curves(log: &Path, out: &Path) -> Result<()> {
    let entries = read_log(log)?;
    let fail = |e: &dyn std::fmt::Display| TrainError::Config(format!("{}: cannot draw: {e}", out.display()));
    register_font().map_err(|e| fail(&e))?;
    if entries.is_empty() {
        return Err(fail(&"the log has no epochs"));
    }
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new().suffix(".png").tempfile_in(dir).map_err(|e| TrainError::Io(out.to_owned(), e))?;
    {
        let root = BitMapBackend::new(tmp.path(), (1000, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let (left, right) = root.split_horizontally(500);
        let last_epoch = entries.last().map_or(1, |e| e.epoch) as f64;
        let max_loss = entries.iter().map(|e| e.train_loss).fold(0.0f64, f64::max).max(1e-6);
        let series: [(&_, &str, f64, Vec<(f64, f64)>); 2] = [
            (&left, "training loss", max_loss * 1.05, entries.iter().map(|e| (e.epoch as f64, e.train_loss)).collect()),
            (&right, "validation F1 (changed class)", 1.0, entries.iter().map(|e| (e.epoch as f64, e.val.f1)).collect()),
        ];
        for (area, title, y_max, points) in series {
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(0.0..last_epoch.max(1.0), 0.0..y_max)
                .map_err(|e| fail(&e))?;
            chart.configure_mesh().x_desc("epoch").draw().map_err(|e| fail(&e))?;
            chart.draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2))).map_err(|e| fail(&e))?;
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, BLUE.filled()))).map_err(|e| fail(&e))?;
        }
        root.present().map_err(|e| fail(&e))?;
    }
    tmp.persist(out).map_err(|e| TrainError::Io(out.to_owned(), e.error))?;
    Ok(())
}
