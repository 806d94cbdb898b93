//! `eval --report DIR`: one self-contained static page (`index.html`, thumbnails and charts
//! beside it; no server, no network) that shows an evaluation: the metrics and confusion
//! matrix, precision–recall and F1 against the threshold, a sortable gallery of every pair
//! (before, after, ground truth, prediction, errors) with lazily loaded thumbnails, and the
//! training curves and recipe when the checkpoint comes from a `train` run folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};


use changedet_data::{DataError, Dataset};
use changedet_metrics::BinaryConfusion;
use changedet_models::LoadedModel;
use changedet_raster::{Raster, atomic};

use changedet_raster::progress::Progress;

use crate::SplitOptions;
use crate::threshold::ThresholdCurve;
use crate::{PairPrediction, Result, TrainError, plot, predict_dataset};

/// Longer side of the gallery's thumbnails.
const THUMBNAIL: u32 = 128;

/// What to evaluate and where the page goes.
pub struct ReportJob<'a> {
    pub model: &'a LoadedModel,
    pub dataset: &'a Dataset,
    pub options: SplitOptions,
    pub dir: &'a Path,
    /// Shown in the page's heading: the checkpoint, and a name for the dataset (its folder's,
    /// not a whole path).
    pub checkpoint: &'a Path,
    pub dataset_label: String,
}

/// One pair's line of the gallery.
struct PairRow {
    name: String,
    /// Against the pair's label, when it has one.
    confusion: Option<BinaryConfusion>,
    /// Share of the pixels that changed: in the label when there is one, else in the prediction.
    changed_area: f64,
    /// Where each thumbnail's full-size image is, in the gallery's column order.
    full_size: Vec<String>,
}

/// A report being filled pair by pair (by `eval`, or by `predict` while it writes its maps).
pub struct Report<'a> {
    job: &'a ReportJob<'a>,
    thumbs: PathBuf,
    /// Change probabilities of labelled changed and unchanged pixels, in 256 bins.
    curve: ThresholdCurve,
    rows: Vec<PairRow>,
}

impl<'a> Report<'a> {
    pub fn new(job: &'a ReportJob<'a>) -> Result<Self> {
        let thumbs = job.dir.join("thumbs");
        std::fs::create_dir_all(&thumbs).map_err(|e| TrainError::Io(thumbs.clone(), e))?;
        Ok(Report { job, thumbs, curve: ThresholdCurve::default(), rows: Vec::with_capacity(job.dataset.len()) })
    }

    /// Adds the next pair of the dataset, in the dataset's order.
    pub fn add(&mut self, pair: &PairPrediction) -> Result<()> {
        let index = self.rows.len();
        let paths = self.job.dataset.pairs.get(index).ok_or_else(|| TrainError::Config(format!("pair {} is beyond the dataset", pair.name)))?;
        let full_size = write_thumbnails(paths, pair, pair.label.as_deref(), &self.thumbs, index)?;
        let share = |values: &[u8], counted: &dyn Fn(u8) -> bool| values.iter().filter(|&&v| v == 1).count() as f64 / values.iter().filter(|&&v| counted(v)).count().max(1) as f64;
        let row = match pair.label.as_deref() {
            Some(label) => {
                self.curve.add(&pair.probability, label);
                let mut confusion = BinaryConfusion::default();
                confusion.accumulate(&pair.change, label, Some(changedet_data::IGNORE)).map_err(|e| TrainError::Config(format!("pair {}: {e}", pair.name)))?;
                PairRow { name: pair.name.clone(), confusion: Some(confusion), changed_area: share(label, &|v| v != changedet_data::IGNORE), full_size }
            }
            None => PairRow { name: pair.name.clone(), confusion: None, changed_area: share(&pair.change, &|_| true), full_size },
        };
        self.rows.push(row);
        Ok(())
    }

    /// Writes the page; returns the split's confusion (when every pair has a label) and the page.
    pub fn finish(self) -> Result<(Option<BinaryConfusion>, PathBuf)> {
        let total = self.rows.iter().map(|r| r.confusion.as_ref()).try_fold(BinaryConfusion::default(), |mut acc, c| {
            acc.merge(c?);
            Some(acc)
        });
        if total.is_some() {
            plot::plot_threshold_curves(&self.curve, self.job.model.threshold(), &self.job.dir.join("threshold.png"))?;
        }
        let training = training_section(self.job)?;
        let page = self.job.dir.join("index.html");
        let html = page_html(self.job, total.as_ref(), &self.rows, &training);
        atomic::write_bytes(&page, html.as_bytes()).map_err(|e| TrainError::Config(format!("{}: {e}", page.display())))?;
        Ok((total, page))
    }
}

/// Evaluates `job.dataset` (every pair labelled) and writes the report; returns the split's
/// confusion and the page.
pub fn write_report(job: &ReportJob, progress: &Progress) -> Result<(BinaryConfusion, PathBuf)> {
    let mut report = Report::new(job)?;
    predict_dataset(job.model, job.dataset, job.options, progress, |pair: PairPrediction| -> Result<()> {
        if pair.label.is_none() {
            return Err(TrainError::Config(format!("pair {} has no label to report against", pair.name)));
        }
        report.add(&pair)
    })?;
    let (total, page) = report.finish()?;
    Ok((total.expect("every pair was labelled"), page))
}


/// `thumbs/INDEX_{before,after,prediction}.png`, and with a label `INDEX_{truth,errors}.png`.
/// Errors: true positives white, false positives red, false negatives blue, unlabelled grey.
/// Returns where each one's full-size image is: the dataset's own files for the dates and the
/// label, `full/INDEX_{prediction,errors}.png` (written here) for the maps.
fn write_thumbnails(paths: &changedet_data::PairPaths, pair: &PairPrediction, label: Option<&[u8]>, dir: &Path, index: usize) -> Result<Vec<String>> {
    let (w, h) = (pair.width as u32, pair.height as u32);
    let grey = |values: Vec<u8>| Raster::new(w, h, 1, values);
    let file = |path: &Path| format!("file://{}", std::path::absolute(path).unwrap_or_else(|_| path.to_owned()).display());
    let mut images = vec![
        ("before", changedet_raster::read_rgb(&paths.before).map_err(DataError::from)?, Some(file(&paths.before))),
        ("after", changedet_raster::read_rgb(&paths.after).map_err(DataError::from)?, Some(file(&paths.after))),
        ("prediction", grey(pair.change.iter().map(|&c| c * 255).collect()), None),
    ];
    if let Some(label) = label {
        let truth = grey(label.iter().map(|&l| if l == 1 { 255 } else if l == 0 { 0 } else { 128 }).collect());
        images.push(("truth", truth, paths.label.as_deref().map(file)));
        images.push(("errors", Raster::new(w, h, 3, error_colours(&pair.change, label)), None));
    }
    let full_dir = dir.with_file_name("full");
    let mut links = Vec::new();
    for (kind, image, original) in images {
        let link = match original {
            Some(link) => link,
            None => {
                std::fs::create_dir_all(&full_dir).map_err(|e| TrainError::Io(full_dir.clone(), e))?;
                write_png(&full_dir.join(format!("{index}_{kind}.png")), &image)?;
                format!("full/{index}_{kind}.png")
            }
        };
        write_png(&dir.join(format!("{index}_{kind}.png")), &image.thumbnail(THUMBNAIL))?;
        links.push(link);
    }
    Ok(links)
}

fn write_png(path: &Path, image: &Raster) -> Result<()> {
    let written = match image.channels {
        1 => changedet_raster::write_gray_png(path, image.width, image.height, &image.data),
        _ => changedet_raster::write_rgb_png(path, image.width, image.height, &image.data),
    };
    Ok(written.map_err(DataError::from)?)
}

fn error_colours(change: &[u8], label: &[u8]) -> Vec<u8> {
    change
        .iter()
        .zip(label)
        .flat_map(|(&p, &l)| match (p, l) {
            (_, 2..) => [128, 128, 128],
            (1, 1) => [255, 255, 255],
            (1, _) => [230, 40, 40],
            (_, 1) => [40, 90, 230],
            _ => [0, 0, 0],
        })
        .collect()
}

/// The run's curves and recipe, when the checkpoint sits in a `train` output folder.
fn training_section(job: &ReportJob) -> Result<String> {
    let Some(run) = job.checkpoint.parent() else { return Ok(String::new()) };
    let curves = run.join(crate::trainer::PLOT);
    if !curves.is_file() {
        return Ok(String::new());
    }
    std::fs::copy(&curves, job.dir.join("training.png")).map_err(|e| TrainError::Io(curves.clone(), e))?;
    let recipe = changedet_models::Checkpoint::read(job.checkpoint)?
        .training
        .and_then(|t| t.get("recipe").cloned())
        .map(|r| serde_json::to_string_pretty(&r).unwrap_or_default())
        .unwrap_or_default();
    Ok(format!("<h2>Training</h2>\n<img src=\"training.png\" alt=\"training curves\">\n<pre>{}</pre>\n", escape(&recipe)))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A score for display ("–" where undefined, e.g. F1 of a pair without change or prediction).
fn shown(value: f64) -> String {
    if value.is_finite() { format!("{value:.4}") } else { "–".to_owned() }
}

fn page_html(job: &ReportJob, total: Option<&BinaryConfusion>, rows: &[PairRow], training: &str) -> String {
    let mut html = String::new();
    let scored = if total.is_some() { "binary change (scores of the changed class; mIoU over both classes)" } else { "predictions (the pairs have no labels to score against)" };
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>changedet report: {}</title>\n<style>{STYLE}</style></head><body>\n\
         <h1>{} on {}</h1>\n<p>checkpoint {} · {} · protocol {} · {scored}</p>\n",
        escape(&job.dataset_label),
        escape(job.model.spec.name()),
        escape(&job.dataset_label),
        escape(&job.checkpoint.display().to_string()),
        changedet_raster::text::count(rows.len() as u64, "pair"),
        job.options.protocol,
    );
    if let Some(total) = total {
        scores_section(&mut html, total);
    }
    html.push_str(training);
    gallery(&mut html, rows, total.is_some());
    let _ = write!(html, "<script>{SCRIPT}</script>\n</body></html>\n");
    html
}

fn scores_section(html: &mut String, c: &BinaryConfusion) {
    html.push_str("<table id=\"metrics\"><tr><th>metric</th><th>value</th></tr>\n");
    for (name, value) in c.metrics().rows() {
        let _ = writeln!(html, "<tr><td>{name}</td><td>{}</td></tr>", shown(value));
    }
    let _ = write!(
        html,
        "</table>\n<table id=\"confusion\"><tr><th>ground truth \\ prediction</th><th>unchanged</th><th>changed</th></tr>\n\
         <tr><th>unchanged</th><td>{}</td><td>{}</td></tr><tr><th>changed</th><td>{}</td><td>{}</td></tr></table>\n\
         <h2>Threshold</h2><img src=\"threshold.png\" alt=\"precision-recall and F1 against the threshold\">\n",
        c.tn, c.fp, c.fn_, c.tp
    );
}

/// The sortable table of every pair; with labels, its scores, truth and errors too.
fn gallery(html: &mut String, rows: &[PairRow], labelled: bool) {
    let (buttons, legend, headings, kinds): (&str, &str, &str, &[&str]) = if labelled {
        (
            "<button data-key=\"f1\">worst F1 first</button> <button data-key=\"iou\">worst IoU first</button> ",
            " · errors: <span class=\"swatch tp\"></span> true positive <span class=\"swatch fp\"></span> false positive \
             <span class=\"swatch fn\"></span> false negative <span class=\"swatch un\"></span> unlabelled",
            "<th>F1</th><th>IoU</th><th>changed (ground truth)</th>",
            &["before", "after", "truth", "prediction", "errors"],
        )
    } else {
        ("", "", "<th>changed (predicted)</th>", &["before", "after", "prediction"])
    };
    let _ = write!(
        html,
        "<h2>Pairs</h2><p>Sort: {buttons}<button data-key=\"area\">most change first</button> <button data-key=\"name\">by name</button>{legend}</p>\n\
         <table id=\"gallery\"><thead><tr><th>pair</th>{headings}{}</tr></thead><tbody>\n",
        kinds.iter().map(|k| format!("<th>{k}</th>")).collect::<String>()
    );
    for (i, row) in rows.iter().enumerate() {
        let _ = write!(html, "<tr data-name=\"{}\" data-area=\"{}\"", escape(&row.name), row.changed_area);
        let mut cells = format!("<td>{}</td>", escape(&row.name));
        if let Some(confusion) = &row.confusion {
            let m = confusion.metrics();
            // Undefined scores (no change and none predicted) sort as perfect.
            let key = |v: f64| if v.is_finite() { v } else { 1.0 };
            let _ = write!(html, " data-f1=\"{}\" data-iou=\"{}\"", key(m.f1), key(m.iou));
            let _ = write!(cells, "<td>{}</td><td>{}</td>", shown(m.f1), shown(m.iou));
        }
        let _ = write!(html, ">{cells}<td>{:.2} %</td>", 100.0 * row.changed_area);
        for (kind, full_size) in kinds.iter().zip(&row.full_size) {
            let _ = write!(html, "<td><a href=\"{}\"><img loading=\"lazy\" src=\"thumbs/{i}_{kind}.png\" alt=\"{kind}\"></a></td>", escape(full_size));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody></table>\n");
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.6em 0}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}#gallery td{vertical-align:middle}\
#gallery img{display:block;max-width:128px}button{margin:0 2px}\
.swatch{display:inline-block;width:.9em;height:.9em;border:1px solid #888;vertical-align:-.1em}\
.tp{background:#ffffff}.fp{background:#e62828}.fn{background:#285ae6}.un{background:#808080}";

/// Sorting the gallery (also from the address: `index.html#sort=f1`); ascending scores put the
/// worst pairs first, the changed area sorts largest first.
const SCRIPT: &str = r#"
function sortBy(key) {
  const body = document.querySelector('#gallery tbody');
  const rows = Array.from(body.rows);
  rows.sort((a, b) => key === 'name' ? a.dataset.name.localeCompare(b.dataset.name)
    : key === 'area' ? b.dataset.area - a.dataset.area : a.dataset[key] - b.dataset[key]);
  rows.forEach(r => body.appendChild(r));
}
document.querySelectorAll('button[data-key]').forEach(b => b.addEventListener('click', () => sortBy(b.dataset.key)));
const wanted = new URLSearchParams(location.hash.slice(1)).get('sort');
if (wanted) sortBy(wanted);
"#;
