//! Opening both dates of a scene on their common grid, and `--align`: GDAL warp of the after
//! date onto the before grid, as a virtual raster (a VRT that warps window by window when read),
//! so nothing the size of the scene is materialised.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::ptr::null_mut;

use gdal::Dataset;
use tempfile::TempPath;

use super::{GdalContext, GeoError, Grid, Overlap, Result, Scene};

/// Warps each of `files` onto `grid` (bilinear) into a VRT in `dir`; pixels outside the file's
/// footprint are masked (its nodata, or an added alpha band). The VRTs live as long as the
/// returned paths.
pub fn warp_onto(files: &[PathBuf], grid: &Grid, dir: &Path) -> Result<Vec<TempPath>> {
    let t = grid.transform;
    if t[2] != 0.0 || t[4] != 0.0 {
        return Err(GeoError::Invalid("--align needs a north-up before scene (no rotation terms)".into()));
    }
    if grid.wkt.is_empty() {
        return Err(GeoError::Invalid("--align needs a before scene with a CRS".into()));
    }
    let (x_min, y_max) = (t[0], t[3]);
    let (x_max, y_min) = (t[0] + grid.width as f64 * t[1], t[3] + grid.height as f64 * t[5]);
    files
        .iter()
        .map(|file| {
            let source = Dataset::open(file).at(file)?;
            if source.projection().is_empty() {
                return Err(GeoError::Invalid(format!("{}: has no CRS, so it cannot be warped (--align)", file.display())));
            }
            let temp = tempfile::Builder::new()
                .prefix(".aligned.")
                .suffix(".vrt")
                .tempfile_in(dir)
                .map(|f| f.into_temp_path())
                .map_err(|e| GeoError::Invalid(format!("{}: cannot create a temporary file: {e}", dir.display())))?;
            let args = [
                "-of".to_owned(),
                "VRT".to_owned(),
                "-overwrite".to_owned(),
                "-t_srs".to_owned(),
                grid.wkt.clone(),
                "-te".to_owned(),
                x_min.to_string(),
                y_min.to_string(),
                x_max.to_string(),
                y_max.to_string(),
                "-ts".to_owned(),
                grid.width.to_string(),
                grid.height.to_string(),
                "-r".to_owned(),
                "bilinear".to_owned(),
                "-dstalpha".to_owned(),
            ];
            warp(&source, &temp, &args).at(file)?;
            Ok(temp)
        })
        .collect()
}

/// `gdalwarp ARGS source dest` through GDAL's utility API (the `gdal` crate has no wrapper).
fn warp(source: &Dataset, dest: &Path, args: &[String]) -> gdal::errors::Result<()> {
    let c_args: Vec<CString> = args.iter().map(|a| CString::new(a.as_str())).collect::<Result<_, _>>()?;
    let mut pointers: Vec<*mut std::ffi::c_char> = c_args.iter().map(|a| a.as_ptr() as *mut _).chain(std::iter::once(null_mut())).collect();
    let c_dest = CString::new(dest.to_string_lossy().as_bytes())?;
    // SAFETY: the argument strings outlive the options; GDALWarp borrows the source handle only
    // for the call, and the returned handle is closed here.
    unsafe {
        let options = gdal_sys::GDALWarpAppOptionsNew(pointers.as_mut_ptr(), null_mut());
        if options.is_null() {
            return Err(gdal::errors::GdalError::NullPointer { method_name: "GDALWarpAppOptionsNew", msg: "bad warp options".into() });
        }
        let mut sources = [source.c_dataset()];
        let mut usage_error = 0;
        let out = gdal_sys::GDALWarp(c_dest.as_ptr(), null_mut(), 1, sources.as_mut_ptr(), options, &mut usage_error);
        gdal_sys::GDALWarpAppOptionsFree(options);
        if out.is_null() {
            let msg = gdal_sys::CPLGetLastErrorMsg();
            let msg = if msg.is_null() { String::new() } else { std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned() };
            return Err(gdal::errors::GdalError::NullPointer { method_name: "GDALWarp", msg });
        }
        gdal_sys::GDALClose(out);
    }
    Ok(())
}

/// Both dates of a scene opened on their common grid.
pub struct RegisteredDates {
    pub before: Scene,
    pub after: Scene,
    pub overlap: Overlap,
    /// The after date warped onto the before grid (`align`), read through these files: keep
    /// them as long as `after`.
    pub warped: Vec<TempPath>,
}

/// Opens two dates (`bands` selected from each) and their overlap; with `align`, an after date on
/// another grid is first warped onto the before grid (into the system's temporary folder).
pub fn open_registered(before: &[PathBuf], after: &[PathBuf], bands: Option<&[usize]>, align: bool) -> Result<RegisteredDates> {
    let after_date = |e: GeoError, how: &str| GeoError::Invalid(format!("after date {}{how}: {e}", after[0].display()));
    let before = Scene::open(before, bands)?;
    let mut after_scene = Scene::open(after, bands).map_err(|e| after_date(e, ""))?;
    let mut overlap = super::overlap(&before.grid, &after_scene.grid, &before.name(), &after_scene.name());
    let warped = if align && overlap.is_err() { warp_onto(after, &before.grid, &std::env::temp_dir())? } else { Vec::new() };
    if !warped.is_empty() {
        let files: Vec<PathBuf> = warped.iter().map(|p| p.to_path_buf()).collect();
        after_scene = Scene::open(&files, bands).map_err(|e| after_date(e, ", warped"))?;
        overlap = super::overlap(&before.grid, &after_scene.grid, &before.name(), &after_scene.name());
    }
    Ok(RegisteredDates { before, after: after_scene, overlap: overlap?, warped })
}
