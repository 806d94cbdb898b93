//! The HTTP side (axum on a small tokio runtime): the page with the scene's description inline,
//! its vendored libraries (compiled into the binary), tiles and coordinates. GDAL's datasets stay on one
//! render thread that opened them; requests reach it through a channel, so a slow or idle browser
//! connection never holds up another.

use std::future::IntoFuture;
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::layers::{SceneFiles, SceneLayers, TILE};

/// The page's scripts and styles, by URL path.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("viewer.js", "text/javascript", include_bytes!("../assets/viewer.js")),
    ("viewer.css", "text/css", include_bytes!("../assets/viewer.css")),
    ("vendor/leaflet-1.9.4/leaflet.js", "text/javascript", include_bytes!("../assets/vendor/leaflet-1.9.4/leaflet.js")),
    ("vendor/leaflet-1.9.4/leaflet.css", "text/css", include_bytes!("../assets/vendor/leaflet-1.9.4/leaflet.css")),
    ("vendor/leaflet-1.9.4/images/layers.png", "image/png", include_bytes!("../assets/vendor/leaflet-1.9.4/images/layers.png")),
    ("vendor/leaflet-1.9.4/images/layers-2x.png", "image/png", include_bytes!("../assets/vendor/leaflet-1.9.4/images/layers-2x.png")),
    ("vendor/leaflet-side-by-side-2.2.0/index.js", "text/javascript", include_bytes!("../assets/vendor/leaflet-side-by-side-2.2.0/index.js")),
    ("vendor/leaflet-side-by-side-2.2.0/layout.css", "text/css", include_bytes!("../assets/vendor/leaflet-side-by-side-2.2.0/layout.css")),
    ("vendor/leaflet-side-by-side-2.2.0/range.css", "text/css", include_bytes!("../assets/vendor/leaflet-side-by-side-2.2.0/range.css")),
    ("vendor/leaflet-side-by-side-2.2.0/range-icon.png", "image/png", include_bytes!("../assets/vendor/leaflet-side-by-side-2.2.0/range-icon.png")),
];

/// What the render thread is asked for.
enum Job {
    Page,
    Tile { layer: String, z: i32, x: i64, y: i64 },
    Coordinates { column: f64, row: f64 },
}

/// What it answers: a body and its type, or nothing there.
type Answer = Result<Option<(&'static str, Vec<u8>)>>;

type Jobs = mpsc::Sender<(Job, oneshot::Sender<Answer>)>;

/// A viewer serving in the background.
pub struct RunningViewer {
    pub url: String,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl RunningViewer {
    /// Serves until the process is stopped.
    pub fn wait(self) {
        let _ = self.server.join();
    }

    pub fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.server.join();
    }
}

/// Opens the scene of `files` and serves it on `address` (`127.0.0.1:0` picks a free port).
pub fn start(files: SceneFiles, address: &str) -> Result<RunningViewer> {
    let jobs = render_thread(files)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_io().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(address)).with_context(|| format!("cannot listen on {address}"))?;
    let url = format!("http://{}/", listener.local_addr()?);
    let app = Router::new()
        .route("/", get(page))
        .route("/coordinates.json", get(coordinates))
        .route("/tiles/{layer}/{z}/{x}/{tile}", get(tile))
        .route("/{*asset}", get(asset))
        .layer(axum::middleware::from_fn(only_loopback_hosts))
        .with_state(jobs);
    let (shutdown, stopped) = oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let serving = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = runtime.block_on(serving.into_future()) {
            tracing::error!("the viewer stopped: {e}");
        }
    });
    Ok(RunningViewer { url, shutdown, server })
}

/// Answers only requests addressed to this machine by name or loopback address: a page of
/// another site whose name is made to resolve to 127.0.0.1 (DNS rebinding) sends its own name
/// as `Host` and is refused, so it cannot read the imagery.
async fn only_loopback_hosts(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if is_loopback_host(host) {
        next.run(request).await
    } else {
        (StatusCode::FORBIDDEN, "changedet view answers requests to localhost, 127.0.0.1 or [::1] only\n").into_response()
    }
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The thread that opens the scene and renders everything GDAL reads; returns once the scene
/// opened (or with why it did not).
fn render_thread(files: SceneFiles) -> Result<Jobs> {
    let (jobs, queue) = mpsc::channel::<(Job, oneshot::Sender<Answer>)>();
    let (opened, result) = mpsc::channel();
    // File names, not paths: the page has no business knowing the machine's folders.
    let title = files.dir.file_name().map_or_else(|| files.dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    std::thread::spawn(move || {
        let layers = match SceneLayers::open(&files) {
            Ok(layers) => layers,
            Err(e) => return drop(opened.send(Err(e))),
        };
        let _ = opened.send(Ok(()));
        for (job, reply) in queue {
            let _ = reply.send(answer(&layers, &title, job));
        }
    });
    result.recv().context("the viewer stopped while opening the scene")??;
    Ok(jobs)
}

fn answer(layers: &SceneLayers, title: &str, job: Job) -> Answer {
    Ok(match job {
        Job::Page => Some(("text/html; charset=utf-8", page_html(layers, title).into_bytes())),
        Job::Coordinates { column, row } => Some(("application/json", layers.coordinates(column, row)?.to_string().into_bytes())),
        Job::Tile { layer, z, x, y } => match layers.tile(&layer, z, x, y)? {
            None => None,
            Some(rgba) => {
                let mut png = Vec::new();
                image::RgbaImage::from_raw(TILE as u32, TILE as u32, rgba)
                    .context("tile buffer")?
                    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
                Some(("image/png", png))
            }
        },
    })
}

/// The page with the scene's description and polygons inline (`</` escaped, so that no string
/// of the data can close the script).
fn page_html(layers: &SceneLayers, title: &str) -> String {
    let inline = |value: &serde_json::Value| value.to_string().replace("</", "<\\/");
    let data = format!("window.SCENE = {}; window.POLYGONS = {};", inline(&layers.describe(title)), layers.polygons().map_or("null".into(), inline));
    include_str!("../assets/index.html").replace("/* scene */", &data)
}

/// Hands `job` to the render thread and turns its answer into a response.
async fn ask(jobs: &Jobs, job: Job) -> Response {
    let (reply, answered) = oneshot::channel();
    let answer = match jobs.send((job, reply)) {
        Ok(()) => answered.await.unwrap_or_else(|_| Err(anyhow!("the render thread stopped"))),
        Err(_) => Err(anyhow!("the render thread stopped")),
    };
    match answer {
        Ok(Some((mime, body))) => ([(header::CONTENT_TYPE, mime)], body).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::warn!("{}", changedet_raster::text::error_line(e.as_ref()));
            (StatusCode::INTERNAL_SERVER_ERROR, changedet_raster::text::error_line(e.as_ref())).into_response()
        }
    }
}

async fn page(State(jobs): State<Jobs>) -> Response {
    ask(&jobs, Job::Page).await
}

#[derive(Deserialize)]
struct Point {
    column: f64,
    row: f64,
}

async fn coordinates(State(jobs): State<Jobs>, Query(point): Query<Point>) -> Response {
    ask(&jobs, Job::Coordinates { column: point.column, row: point.row }).await
}

/// `/tiles/LAYER/Z/X/Y.png`.
async fn tile(State(jobs): State<Jobs>, Path((layer, z, x, tile)): Path<(String, i32, i64, String)>) -> Response {
    match tile.strip_suffix(".png").and_then(|y| y.parse().ok()) {
        Some(y) => ask(&jobs, Job::Tile { layer, z, x, y }).await,
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(p, ..)| *p == path) {
        Some((_, mime, bytes)) => ([(header::CONTENT_TYPE, *mime)], *bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_only() {
        for host in ["localhost", "localhost:8765", "127.0.0.1:8765", "127.0.0.2", "[::1]:8765", "LOCALHOST"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["", "evil.example", "evil.example:8765", "127.0.0.1.evil.example", "10.0.0.1:8765", "[::2]:80", "localhost.evil.example"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
