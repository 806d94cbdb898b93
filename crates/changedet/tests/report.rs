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
