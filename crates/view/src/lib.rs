//! `changedet view`: an interactive map of a whole-scene run, served on 127.0.0.1. The page
//! (Leaflet 1.9.4 and leaflet-side-by-side 2.2.0, vendored under `assets/vendor/`) swipes between
//! the two dates, overlays the change and probability maps with an opacity slider, and draws the
//! change polygons with their attributes. Tiles are rendered on request from the COGs' windows and
//! overviews through GDAL, so a large scene opens at once.
//!
//! The page's state lives in its URL fragment (`#swipe=0.3&layers=change,polygons&opacity=0.7`),
//! so that a view can be shared, and screenshots of a given state can be tested.

mod layers;
mod server;

pub use layers::{MAX_ZOOM, SceneFiles, SceneLayers, TILE};
pub use server::{RunningViewer, start};
