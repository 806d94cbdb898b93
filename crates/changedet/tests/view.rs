//! `changedet view` in a real headless browser: `predict` runs the shipped model on a real
//! georeferenced scene (OSCD Paris, Sentinel-2 10 m bands), `view` serves its outputs, and
//! screenshots of given states (the swipe's position, the overlays shown) differ where they should.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

/// `changedet view` running as a child process, killed when dropped.
struct Viewer {
    child: Child,
    url: String,
}

impl Viewer {
    fn start(dir: &Path, dates: &[&str]) -> Viewer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_changedet")).args(["view", s(dir), "--port", "0"]).args(dates).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no address in {line:?}")).to_owned();
        Viewer { child, url }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SIZE: (u32, u32) = (800, 600);

/// The screen pixels over the scene at zoom 0 centred (the Paris crop is 390×408 pixels).
fn over_scene(image: &image::RgbImage) -> Vec<[u8; 3]> {
    let (left, top) = (SIZE.0 / 2 - 195 + 5, SIZE.1 / 2 - 204 + 5);
    (top..top + 398).flat_map(|y| (left..left + 380).map(move |x| (x, y))).map(|(x, y)| image.get_pixel(x, y).0).collect()
}

fn count(pixels: &[[u8; 3]], colour: impl Fn(&[u8; 3]) -> bool) -> usize {
    pixels.iter().filter(|p| colour(p)).count()
}

#[test]
fn the_viewer_swipes_between_the_dates_and_toggles_its_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let paris = shared_data("oscd-s2/geotiff_10m/paris");
    let date = |folder: &str| {
        let mut files: Vec<String> = ["B02", "B03", "B04"]
            .iter()
            .map(|band| std::fs::read_dir(paris.join(folder)).unwrap().map(|e| e.unwrap().path()).find(|p| s(p).ends_with(&format!("{band}.tif"))).unwrap())
            .map(|p| s(&p).to_owned())
            .collect();
        files.sort();
        files.join(",")
    };
    let out = tmp.path().join("scene");
    let polygons = out.join("changes.gpkg");
    ok(&["predict", "--before", &date("imgs_1"), "--after", &date("imgs_2"), "--bands", "3,2,1", "--tile", "128", "--overlap", "16", "--out", s(&out), "--vector", s(&polygons), "--device", "cpu"]);
    assert!(out.join("scene.json").is_file(), "predict records the scene's dates for the viewer");

    let viewer = Viewer::start(&out, &[]);
    let shot = |name: &str, state: &str| {
        let url = format!("{}#view=195,-204,0&{state}", viewer.url);
        let (_, console) = dom(&url);
        assert!(console.is_empty(), "{state}: console messages {console:?}");
        over_scene(&screenshot(&url, &tmp.path().join(format!("{name}.png")), SIZE))
    };
    let before = shot("before", "swipe=1&layers=");
    let after = shot("after", "swipe=0&layers=");
    let change = shot("change", "swipe=0&layers=change&opacity=1");
    let outlined = shot("polygons", "swipe=0&layers=polygons");

    // The swipe: all before vs all after (a year apart: most pixels differ).
    let differing = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert!(differing > before.len() / 2, "swiping changed {differing} of {} pixels", before.len());
    assert!(count(&before, |p| p.iter().max().unwrap() - p.iter().min().unwrap() > 10) > before.len() / 2, "the before date shows in colour");
    // The change layer paints changed pixels red, at full opacity; the dates alone have none.
    let red = |p: &[u8; 3]| *p == [255, 32, 32];
    let (red_with, red_without) = (count(&change, red), count(&after, red));
    assert!(red_with > 500 && red_without == 0, "change layer: {red_with} red pixels, {red_without} without it");
    // The polygons layer outlines the changes in yellow.
    let yellow = |p: &[u8; 3]| p[0] > 200 && p[1] > 180 && p[2] < 90;
    let (outline, plain) = (count(&outlined, yellow), count(&after, yellow));
    assert!(outline > plain + 200, "polygon outlines: {outline} yellow pixels against {plain} in the image");

    if std::env::var_os("CHANGEDET_UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/viewer.png");
        screenshot(&format!("{}#view=195,-204,0&swipe=0.5&layers=change,polygons&opacity=0.6", viewer.url), &docs, SIZE);
    }
}

#[test]
fn the_viewer_shows_a_pair_predicted_from_a_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shared_data("egy-bcd-256");
    let maps = tmp.path().join("maps");
    ok(&["predict", "--dataset", &format!("generic:{}", s(&data)), "--split", "all", "--out", s(&maps), "--device", "cpu"]);
    let pair = std::fs::read_dir(data.join("A")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).min().unwrap();
    let viewer = Viewer::start(&maps, &["--before", s(&data.join("A").join(&pair)), "--after", s(&data.join("B").join(&pair))]);
    let shot = |name: &str, state: &str| screenshot(&format!("{}#view=128,-128,0&{state}", viewer.url), &tmp.path().join(format!("{name}.png")), (400, 400));
    let red = |image: &image::RgbImage| image.pixels().filter(|p| p.0 == [255, 32, 32]).count();
    let (with, without) = (red(&shot("change", "swipe=0&layers=change&opacity=1")), red(&shot("plain", "swipe=0&layers=")));
    assert!(with > 100 && without == 0, "the pair's change map: {with} red pixels, {without} without it");

    // The page names files, never the folders they are in.
    let (page, _) = dom(&viewer.url);
    assert!(page.contains(&pair) && !page.contains(s(tmp.path())) && !page.contains(s(&data)), "{page}");
    // Another site's name resolving to 127.0.0.1 (DNS rebinding) gets nothing.
    let get = |host: &str| {
        use std::io::{Read, Write};
        let address = viewer.url.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(stream, "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.lines().next().unwrap_or_default().to_owned()
    };
    let port = viewer.url.trim_end_matches('/').rsplit(':').next().unwrap().to_owned();
    assert!(get(&format!("evil.example:{port}")).contains("403"), "a foreign Host is refused");
    assert!(get(&format!("localhost:{port}")).contains("200"), "localhost is served");
}
