//! The HTTP side: the page and its vendored libraries (compiled into the binary), the scene's
//! description, tiles and polygons. One thread serves every request, as GDAL's datasets are not
//! shared between threads; tiles are small and read from overviews, so one is enough for a person.

use std::io::Cursor;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};
use tiny_http::{Header, Request, Response, Server};

use crate::layers::{SceneFiles, SceneLayers, TILE};

/// The page and what it loads, by URL path.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("/viewer.js", "text/javascript", include_bytes!("../assets/viewer.js")),
    ("/viewer.css", "text/css", include_bytes!("../assets/viewer.css")),
    ("/vendor/leaflet-1.9.4/leaflet.js", "text/javascript", include_bytes!("../assets/vendor/leaflet-1.9.4/leaflet.js")),
    ("/vendor/leaflet-1.9.4/leaflet.css", "text/css", include_bytes!("../assets/vendor/leaflet-1.9.4/leaflet.css")),
    ("/vendor/leaflet-1.9.4/images/layers.png", "image/png", include_bytes!("../assets/vendor/leaflet-1.9.4/images/layers.png")),
    ("/vendor/leaflet-1.9.4/images/layers-2x.png", "image/png", include_bytes!("../assets/vendor/leaflet-1.9.4/images/layers-2x.png")),
    ("/vendor/leaflet-side-by-side-2.2.0/index.js", "text/javascript", include_bytes!("../assets/vendor/leaflet-side-by-side-2.2.0/index.js")),
    ("/vendor/leaflet-side-by-side-2.2.0/layout.css", "text/css", include_bytes!("../assets/vendor/leaflet-side-by-side-2.2.0/layout.css")),
    ("/vendor/leaflet-side-by-side-2.2.0/range.css", "text/css", include_bytes!("../assets/vendor/leaflet-side-by-side-2.2.0/range.css")),
    ("/vendor/leaflet-side-by-side-2.2.0/range-icon.png", "image/png", include_bytes!("../assets/vendor/leaflet-side-by-side-2.2.0/range-icon.png")),
];

/// A viewer serving in the background.
pub struct RunningViewer {
    pub url: String,
    server: Arc<Server>,
    thread: JoinHandle<()>,
}

impl RunningViewer {
    /// Serves until the process is stopped.
    pub fn wait(self) {
        let _ = self.thread.join();
    }

    pub fn stop(self) {
        self.server.unblock();
        let _ = self.thread.join();
    }
}

/// Opens the scene of `files` and serves it on `address` (`127.0.0.1:0` picks a free port).
pub fn start(files: SceneFiles, address: &str) -> Result<RunningViewer> {
    let server = Arc::new(Server::http(address).map_err(|e| anyhow!("cannot listen on {address}: {e}"))?);
    let url = format!("http://{}/", server.server_addr().to_ip().context("not an IP address")?);
    let title = files.dir.display().to_string();
    // GDAL datasets stay on the thread that opened them.
    let (opened, result) = std::sync::mpsc::channel();
    let serving = Arc::clone(&server);
    let thread = std::thread::spawn(move || match SceneLayers::open(&files) {
        Err(e) => {
            let _ = opened.send(Err(e));
        }
        Ok(layers) => {
            let _ = opened.send(Ok(()));
            for request in serving.incoming_requests() {
                respond(&layers, &title, request);
            }
        }
    });
    result.recv().context("the viewer stopped while opening the scene")??;
    Ok(RunningViewer { url, server, thread })
}

fn respond(layers: &SceneLayers, title: &str, request: Request) {
    let path = request.url().split(['?', '#']).next().unwrap_or("/").to_owned();
    let response = route(layers, title, &path, request.url()).unwrap_or_else(|e| {
        tracing::warn!("{path}: {e:#}");
        Response::from_string(format!("{e:#}")).with_status_code(500)
    });
    let _ = request.respond(response);
}

type Reply = Response<Cursor<Vec<u8>>>;

fn route(layers: &SceneLayers, title: &str, path: &str, url: &str) -> Result<Reply> {
    if path == "/" || path == "/index.html" {
        return Ok(with_type(Response::from_data(page(layers, title).into_bytes()), "text/html; charset=utf-8"));
    }
    if let Some((_, mime, bytes)) = ASSETS.iter().find(|(p, ..)| *p == path) {
        return Ok(with_type(Response::from_data(bytes.to_vec()), mime));
    }
    if path == "/scene.json" {
        return Ok(json(&layers.describe(title)));
    }
    if path == "/coordinates.json" {
        let query = |key: &str| -> Result<f64> {
            let value = url.split_once('?').map_or("", |(_, q)| q).split('&').find_map(|kv| kv.strip_prefix(&format!("{key}=")));
            value.context("missing")?.parse().with_context(|| format!("{key} is not a number"))
        };
        return Ok(json(&layers.coordinates(query("column")?, query("row")?)?));
    }
    if let Some(rest) = path.strip_prefix("/tiles/") {
        return tile(layers, rest);
    }
    Ok(not_found())
}

/// The page with the scene's description and polygons inline (`</` escaped, so that no string
/// of the data can close the script).
fn page(layers: &SceneLayers, title: &str) -> String {
    let inline = |value: &serde_json::Value| value.to_string().replace("</", "<\\/");
    let data = format!("window.SCENE = {}; window.POLYGONS = {};", inline(&layers.describe(title)), layers.polygons().map_or("null".into(), inline));
    include_str!("../assets/index.html").replace("/* scene */", &data)
}

/// `LAYER/Z/X/Y.png`.
fn tile(layers: &SceneLayers, rest: &str) -> Result<Reply> {
    let parts: Vec<&str> = rest.trim_end_matches(".png").split('/').collect();
    let [layer, z, x, y] = parts.as_slice() else { return Ok(not_found()) };
    let (Ok(z), Ok(x), Ok(y)) = (z.parse::<i32>(), x.parse::<i64>(), y.parse::<i64>()) else { return Ok(not_found()) };
    let Some(rgba) = layers.tile(layer, z, x, y)? else { return Ok(not_found()) };
    let mut png = Vec::new();
    image::RgbaImage::from_raw(TILE as u32, TILE as u32, rgba)
        .context("tile buffer")?
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)?;
    Ok(with_type(Response::from_data(png), "image/png"))
}

fn json(value: &serde_json::Value) -> Reply {
    with_type(Response::from_data(value.to_string().into_bytes()), "application/json")
}

fn not_found() -> Reply {
    Response::from_data(b"not found".to_vec()).with_status_code(404)
}

fn with_type(response: Reply, mime: &str) -> Reply {
    response.with_header(Header::from_bytes("Content-Type", mime).expect("a valid header"))
}
