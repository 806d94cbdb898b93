//! `eval --report` in a real headless browser (Debian's chromium, installed by the set-up): the
//! page opens from disk without console messages, shows the metrics and the gallery's rows, and
//! sorting reorders what is on screen.

mod common;

use common::*;

/// The gallery's `data-KEY` values, top to bottom.
fn column(dom: &str, key: &str) -> Vec<String> {
    let marker = format!("{key}=\"");
    let gallery = &dom[dom.find("<tbody>").expect("a gallery")..];
    gallery.split(&marker).skip(1).map(|rest| rest[..rest.find('"').unwrap()].to_owned()).collect()
}

#[test]
fn the_report_opens_from_disk_shows_its_tables_and_sorts_the_gallery() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    let dataset = format!("generic:{}", shared_data("egy-bcd-256").display());
    let out = ok(&["eval", "--dataset", &dataset, "--split", "all", "--report", s(&report), "--device", "cpu"]);
    assert!(out.contains("open it in a browser"), "{out}");
    let page = format!("file://{}", report.join("index.html").display());

    let (by_f1, console) = dom(&format!("{page}#sort=f1"));
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(by_f1.contains("id=\"metrics\"") && by_f1.contains("<td>f1</td>") && by_f1.contains("id=\"confusion\""));
    let f1: Vec<f64> = column(&by_f1, "data-f1").iter().map(|v| v.parse().unwrap()).collect();
    assert_eq!(f1.len(), 9, "one row per pair");
    assert!(f1.windows(2).all(|w| w[0] <= w[1]), "worst F1 first: {f1:?}");
    let (by_area, _) = dom(&format!("{page}#sort=area"));
    let area: Vec<f64> = column(&by_area, "data-area").iter().map(|v| v.parse().unwrap()).collect();
    assert!(area.windows(2).all(|w| w[0] >= w[1]), "most change first: {area:?}");
    assert_ne!(column(&by_f1, "data-name"), column(&by_area, "data-name"), "the two orders differ on this split");

    // On screen: the gallery's first rows show their thumbnails (photographs: many saturated
    // pixels below the charts), and a different order shows different pixels there.
    let (a, b) = (screenshot(&format!("{page}#sort=f1"), &tmp.path().join("f1.png"), (1100, 1700)), screenshot(&format!("{page}#sort=area"), &tmp.path().join("area.png"), (1100, 1700)));
    let lower = |img: &image::RgbImage| img.enumerate_pixels().filter(|(_, y, _)| *y > 900).map(|(_, _, p)| *p).collect::<Vec<_>>();
    let colourful = lower(&a).iter().filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 40).count();
    assert!(colourful > 20_000, "thumbnails on screen: {colourful} colourful pixels");
    let differing = lower(&a).iter().zip(lower(&b)).filter(|(p, q)| **p != *q).count();
    assert!(differing > 20_000, "sorting changed {differing} pixels of the gallery");
}

#[test]
fn predict_writes_a_report_with_scores_where_the_pairs_have_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shared_data("egy-bcd-256");
    let (labelled, unlabelled) = (tmp.path().join("labelled"), tmp.path().join("unlabelled"));
    let out = ok(&["predict", "--dataset", &format!("generic:{}", s(&data)), "--split", "all", "--out", s(&tmp.path().join("maps")), "--report", s(&labelled), "--device", "cpu"]);
    assert!(out.contains("open it in a browser"), "{out}");
    let pair = |date: &str| data.join(date).join("test_1.png");
    ok(&["predict", "--before", s(&pair("A")), "--after", s(&pair("B")), "--out", s(&tmp.path().join("pair")), "--report", s(&unlabelled), "--device", "cpu"]);

    let (scored, console) = dom(&format!("file://{}#sort=area", labelled.join("index.html").display()));
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(scored.contains("id=\"metrics\"") && scored.contains("data-f1="), "a labelled split is scored");
    assert_eq!(column(&scored, "data-name").len(), 9);
    let (plain, console) = dom(&format!("file://{}#sort=area", unlabelled.join("index.html").display()));
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(!plain.contains("id=\"metrics\"") && !plain.contains("data-f1=") && !plain.contains("_errors.png"), "nothing to score without labels");
    assert_eq!(column(&plain, "data-area").len(), 1);
    assert!(unlabelled.join("thumbs/0_prediction.png").is_file());
}

#[test]
fn the_report_names_its_dataset_links_full_size_images_and_its_legend_has_the_errors_colours() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report");
    let data = shared_data("egy-bcd-256");
    ok(&["eval", "--dataset", &format!("generic:{}", data.display()), "--split", "all", "--report", s(&report), "--device", "cpu"]);
    let (page, console) = dom(&format!("file://{}", report.join("index.html").display()));
    assert!(console.is_empty(), "console messages: {console:?}");

    // Named by its folder, not by a path from the root of the disk.
    assert!(page.contains("<title>changedet report: egy-bcd-256 (generic)</title>") && page.contains("on egy-bcd-256 (generic)</h1>"));
    assert!(!page.contains(&format!("on generic:{}", data.display())));
    assert!(page.contains("<th>changed (ground truth)</th>"));

    // Every thumbnail links to an image of the pair's full size.
    let links: Vec<&str> = page.split("<a href=\"").skip(1).map(|rest| &rest[..rest.find('"').unwrap()]).collect();
    assert_eq!(links.len(), 9 * 5, "before, after, truth, prediction and errors of 9 pairs");
    for link in &links {
        let path = match link.strip_prefix("file://") {
            Some(absolute) => std::path::PathBuf::from(absolute),
            None => report.join(link),
        };
        let (w, h) = image::image_dimensions(&path).unwrap_or_else(|e| panic!("{link}: {e}"));
        assert_eq!((w, h), (256, 256), "{link} is full size");
    }

    // The legend's swatches are the colours the error maps are painted in.
    let swatch = |class: &str| {
        let rule = format!(".{class}{{background:#");
        let hex = &page[page.find(&rule).unwrap_or_else(|| panic!("no {rule}")) + rule.len()..][..6];
        image::Rgb([0, 2, 4].map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()))
    };
    let legend = [swatch("tp"), swatch("fp"), swatch("fn"), swatch("un"), image::Rgb([0, 0, 0])];
    let mut seen = std::collections::HashSet::new();
    for link in links.iter().filter(|l| l.ends_with("_errors.png")) {
        for p in image::open(report.join(link)).unwrap().to_rgb8().pixels() {
            assert!(legend.contains(p), "{link} has {p:?}, which the legend does not show");
            seen.insert(*p);
        }
    }
    assert!(seen.len() >= 4, "true and false positives and negatives all appear: {seen:?}");
}

/// A partially labelled pair (the Taizhou sample: 128 = unlabelled) is reported on its labelled
/// pixels, with the same scores as `eval` without a report.
#[test]
fn a_report_scores_partial_labels_as_eval_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = format!("generic:{}", std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/taizhou").display());
    let (plain, reported) = (tmp.path().join("plain.json"), tmp.path().join("reported.json"));
    let args = ["eval", "--dataset", &dataset, "--split", "all", "--ignore-value", "128", "--device", "cpu"];
    ok(&[&args[..], &["--json", s(&plain)]].concat());
    ok(&[&args[..], &["--json", s(&reported), "--report", s(&tmp.path().join("report"))]].concat());
    let confusion = |path: &std::path::Path| serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(path).unwrap()).unwrap()["metrics"]["confusion"].clone();
    assert_eq!(confusion(&reported), confusion(&plain));
    let labelled = ["tp", "fp", "fn", "tn"].iter().map(|k| confusion(&plain)[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(labelled, 4227 + 17163, "only the labelled pixels are scored");
}
