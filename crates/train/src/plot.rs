//! Charts as PNG: a run's loss and F1 curves (from its `metrics.jsonl`), confusion matrices and
//! per-class bars for `changedet metrics`.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::threshold::ThresholdCurve;
use crate::trainer::read_log;
use changedet_raster::atomic;

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

fn draw_error(out: &Path, e: &dyn std::fmt::Display) -> TrainError {
    TrainError::Config(format!("{}: cannot draw: {e}", out.display()))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws into a temporary PNG beside `out` and renames it into place.
fn draw_png(out: &Path, size: (u32, u32), draw: impl FnOnce(&Area) -> std::result::Result<(), String>) -> Result<()> {
    register_font().map_err(|e| draw_error(out, &e))?;
    // plotters picks the image format from the file name's extension.
    let staged = atomic::staged_path(out, "png").map_err(|e| TrainError::Io(out.to_owned(), e))?;
    {
        let root = BitMapBackend::new(&staged, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(out, &e))?;
        draw(&root).map_err(|e| draw_error(out, &e))?;
        root.present().map_err(|e| draw_error(out, &e))?;
    }
    atomic::commit(staged, out).map_err(|e| TrainError::Io(out.to_owned(), e))
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Training loss and validation F1 per epoch, side by side.
pub fn plot_curves(log: &Path, out: &Path) -> Result<()> {
    let entries = read_log(log)?;
    if entries.is_empty() {
        return Err(draw_error(out, &"the log has no epochs"));
    }
    draw_png(out, (1000, 420), |root| {
        let (left, right) = root.split_horizontally(500);
        let last_epoch = entries.last().map_or(1, |e| e.epoch) as f64;
        let max_loss = entries.iter().map(|e| e.train_loss).fold(0.0f64, f64::max).max(1e-6);
        let loss = entries.iter().map(|e| (e.epoch as f64, e.train_loss)).collect();
        let f1 = entries.iter().map(|e| (e.epoch as f64, e.val.f1)).collect();
        draw_curve(&left, "training loss", last_epoch, max_loss * 1.05, loss)?;
        draw_curve(&right, "validation F1 (changed class)", last_epoch, 1.0, f1)
    })
}

fn draw_curve(area: &Area, title: &str, last_epoch: f64, y_max: f64, points: Vec<(f64, f64)>) -> std::result::Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..last_epoch.max(1.0), 0.0..y_max)
        .map_err(s)?;
    chart.configure_mesh().x_desc("epoch").draw().map_err(s)?;
    chart.draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2))).map_err(s)?;
    chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, BLUE.filled()))).map_err(s)?;
    Ok(())
}

/// A confusion matrix as a heat map, each row normalised by its total, with the counts written in.
pub fn plot_confusion(confusion: &changedet_metrics::Confusion, labels: &[String], title: &str, out: &Path) -> Result<()> {
    let n = confusion.n;
    let side = (160 + 70 * n as u32).clamp(420, 1400);
    draw_png(out, (side + 120, side), |root| {
        // plotters' integer ranges include their end: 0..n−1 is n segments.
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(110)
            .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())
            .map_err(s)?;
        let label = |v: &SegmentValue<usize>, flip: bool| match v {
            SegmentValue::CenterOf(i) => labels.get(if flip { n - 1 - *i } else { *i }).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n)
            .y_labels(n)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .x_desc("prediction")
            .y_desc("ground truth")
            .draw()
            .map_err(s)?;
        let cells = (0..n).flat_map(|gt| (0..n).map(move |pred| (gt, pred)));
        chart
            .draw_series(cells.clone().map(|(gt, pred)| {
                let share = confusion.get(gt, pred) as f64 / confusion.row_sum(gt).max(1) as f64;
                let shade = (255.0 * (1.0 - share)) as u8;
                let row = n - 1 - gt;
                Rectangle::new(
                    [(SegmentValue::Exact(pred), SegmentValue::Exact(row + 1)), (SegmentValue::Exact(pred + 1), SegmentValue::Exact(row))],
                    RGBColor(shade, shade, 255).filled(),
                )
            }))
            .map_err(s)?;
        if n <= 12 {
            chart
                .draw_series(cells.map(|(gt, pred)| {
                    let share = confusion.get(gt, pred) as f64 / confusion.row_sum(gt).max(1) as f64;
                    let colour = if share > 0.5 { WHITE } else { BLACK };
                    Text::new(
                        confusion.get(gt, pred).to_string(),
                        (SegmentValue::CenterOf(pred), SegmentValue::CenterOf(n - 1 - gt)),
                        ("sans-serif", 13).into_font().color(&colour).pos(Pos::new(HPos::Center, VPos::Center)),
                    )
                }))
                .map_err(s)?;
        }
        Ok(())
    })
}

/// One bar per class (values in [0, 1]), its value written above it.
pub fn plot_bars(labels: &[String], values: &[f64], title: &str, out: &Path) -> Result<()> {
    let n = values.len();
    draw_png(out, ((200 + 60 * n as u32).max(500), 440), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(50)
            .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..1.05)
            .map_err(s)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(s)?;
        chart
            .draw_series(
                Histogram::vertical(&chart).margin(8).style(BLUE.mix(0.7).filled()).data(values.iter().copied().enumerate()),
            )
            .map_err(s)?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| {
                Text::new(format!("{v:.3}"), (SegmentValue::CenterOf(i), v + 0.04), TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Center)))
            }))
            .map_err(s)?;
        Ok(())
    })
}

/// Precision against recall, and F1 against the decision threshold, with the threshold in use
/// (`marked`) drawn on both.
pub fn plot_threshold_curves(curve: &ThresholdCurve, marked: f64, out: &Path) -> Result<()> {
    let points = curve.points();
    let at_mark = curve.at(marked);
    draw_png(out, (1000, 420), |root| {
        let (left, right) = root.split_horizontally(500);
        let pr: Vec<(f64, f64)> = points.iter().map(|p| (p.recall, p.precision)).collect();
        let mut chart = axes(&left, "precision–recall (changed class)", "recall", "precision")?;
        chart.draw_series(LineSeries::new(pr, BLUE.stroke_width(2))).map_err(s)?;
        chart.draw_series(at_mark.map(|p| Circle::new((p.recall, p.precision), 6, RED.filled()))).map_err(s)?;
        let f1: Vec<(f64, f64)> = points.iter().map(|p| (p.threshold, p.f1)).collect();
        let mut chart = axes(&right, "F1 against the threshold (red: in use)", "threshold on the change probability", "F1")?;
        chart.draw_series(LineSeries::new(f1, BLUE.stroke_width(2))).map_err(s)?;
        chart.draw_series(LineSeries::new([(marked, 0.0), (marked, 1.0)], RED.stroke_width(1))).map_err(s)?;
        Ok(())
    })
}

type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

fn axes<'a, 'b>(area: &'a Area<'b>, title: &str, x: &str, y: &str) -> std::result::Result<Chart<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(s)?;
    chart.configure_mesh().x_desc(x).y_desc(y).draw().map_err(s)?;
    Ok(chart)
}

