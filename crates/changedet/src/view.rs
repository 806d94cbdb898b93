use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

use changedet_view::SceneFiles;

/// Open an interactive map of a whole-scene run's outputs in the browser: the two dates with a
/// swipe between them, the change and probability maps as overlays with an opacity slider, the
/// change polygons with their attributes, and the coordinates under the cursor. A local web
/// server on 127.0.0.1 renders tiles on request from the maps' overviews and the dates' files, so
/// large scenes open at once. Stop it with Ctrl-C.
///
/// The folder is one `predict` wrote for a scene (its `scene.json` names the two dates); for maps
/// made elsewhere, give the dates with --before and --after.
#[derive(Parser)]
pub struct Args {
    /// Output folder of `predict` on a scene (change.tif, probability.tif, scene.json, ...).
    dir: PathBuf,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// The before date's files, comma-separated, instead of those in scene.json.
    #[arg(long, value_delimiter = ',', requires = "after")]
    before: Vec<PathBuf>,
    #[arg(long, value_delimiter = ',', requires = "before")]
    after: Vec<PathBuf>,
    /// 1-based bands of each date to show as RGB, with --before/--after (e.g. 3,2,1).
    #[arg(long, value_delimiter = ',', requires = "before")]
    bands: Option<Vec<usize>>,
}

pub fn run(args: Args) -> Result<()> {
    let files = if args.before.is_empty() {
        SceneFiles::from_record(&args.dir)?
    } else {
        SceneFiles::with_dates(&args.dir, args.before, args.after, args.bands)?
    };
    let viewer = changedet_view::start(files, &format!("127.0.0.1:{}", args.port))?;
    println!("changedet view: open {} in a browser (Ctrl-C stops the server)", viewer.url);
    viewer.wait();
    Ok(())
}
