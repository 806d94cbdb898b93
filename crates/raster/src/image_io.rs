use std::path::Path;

use image::{ExtendedColorType, ImageEncoder, codecs::png::PngEncoder};

use crate::RasterError;

/// An interleaved raster (`height × width × channels`, row-major): 8-bit for image files and
/// labels, 16-bit for sensor bands (Sentinel-2's digital numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raster<T = u8> {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub data: Vec<T>,
}

impl<T> Raster<T> {
    pub fn new(width: u32, height: u32, channels: usize, data: Vec<T>) -> Self {
        debug_assert_eq!(data.len(), width as usize * height as usize * channels);
        Self { width, height, channels, data }
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

impl Raster {
    /// A copy at most `max_side` pixels on its longer side (area-averaged), for previews.
    pub fn thumbnail(&self, max_side: u32) -> Raster {
        let scale = (max_side as f64 / self.width.max(self.height) as f64).min(1.0);
        let (w, h) = (((self.width as f64 * scale).round() as u32).max(1), ((self.height as f64 * scale).round() as u32).max(1));
        let small = match self.channels {
            1 => image::imageops::thumbnail(&image::GrayImage::from_raw(self.width, self.height, self.data.clone()).expect("sized"), w, h).into_raw(),
            _ => image::imageops::thumbnail(&image::RgbImage::from_raw(self.width, self.height, self.data.clone()).expect("sized"), w, h).into_raw(),
        };
        Raster::new(w, h, self.channels.min(3), small)
    }
}

fn open(path: &Path) -> Result<image::DynamicImage, RasterError> {
    let read = |source| RasterError::Read { path: path.to_owned(), source };
    image::ImageReader::open(path)
        .map_err(|e| read(image::ImageError::IoError(e)))?
        .with_guessed_format()
        .map_err(|e| read(image::ImageError::IoError(e)))?
        .decode()
        .map_err(read)
}

/// Width and height from the file header, without decoding the pixels.
pub fn dimensions(path: &Path) -> Result<(u32, u32), RasterError> {
    image::image_dimensions(path).map_err(|source| RasterError::Read { path: path.to_owned(), source })
}

/// Decodes an image as 3-channel RGB (grey is replicated, alpha dropped, 16-bit scaled to 8).
pub fn read_rgb(path: &Path) -> Result<Raster, RasterError> {
    let img = open(path)?.into_rgb8();
    let (w, h) = img.dimensions();
    Ok(Raster::new(w, h, 3, img.into_raw()))
}

/// Decodes a single-band label or map. An RGB file whose three channels are equal (a grey label
/// saved as RGB) is accepted as grey; a truly coloured file is refused (palette labels are
/// decoded by their own readers).
pub fn read_gray(path: &Path) -> Result<Raster, RasterError> {
    let img = open(path)?;
    let (w, h) = (img.width(), img.height());
    let data = match img {
        image::DynamicImage::ImageLuma8(g) => g.into_raw(),
        other => {
            let rgb = other.into_rgb8().into_raw();
            if rgb.chunks_exact(3).any(|p| p[0] != p[1] || p[1] != p[2]) {
                return Err(RasterError::Read {
                    path: path.to_owned(),
                    source: image::ImageError::Unsupported(image::error::UnsupportedError::from_format_and_kind(
                        image::error::ImageFormatHint::Unknown,
                        image::error::UnsupportedErrorKind::GenericFeature(
                            "a single-band label was expected, but the file has differing colour channels".into(),
                        ),
                    )),
                });
            }
            rgb.chunks_exact(3).map(|p| p[0]).collect()
        }
    };
    Ok(Raster::new(w, h, 1, data))
}

fn write_png(path: &Path, width: u32, height: u32, channels: usize, data: &[u8]) -> Result<(), RasterError> {
    let expected = width as usize * height as usize * channels;
    if data.len() != expected {
        return Err(RasterError::BufferSize { path: path.to_owned(), width, height, channels, expected, actual: data.len() });
    }
    let color = if channels == 1 { ExtendedColorType::L8 } else { ExtendedColorType::Rgb8 };
    let mut encoded = Vec::new();
    PngEncoder::new(&mut encoded).write_image(data, width, height, color).map_err(|source| RasterError::Encode { path: path.to_owned(), source })?;
    crate::atomic::write_bytes(path, &encoded).map_err(|source| RasterError::Write { path: path.to_owned(), source })
}

pub fn write_gray_png(path: &Path, width: u32, height: u32, data: &[u8]) -> Result<(), RasterError> {
    write_png(path, width, height, 1, data)
}

pub fn write_rgb_png(path: &Path, width: u32, height: u32, data: &[u8]) -> Result<(), RasterError> {
    write_png(path, width, height, 3, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip_and_no_partial_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.png");
        write_gray_png(&path, 3, 2, &[0, 255, 0, 255, 0, 255]).unwrap();
        assert_eq!(read_gray(&path).unwrap().data, vec![0, 255, 0, 255, 0, 255]);
        let bad = dir.path().join("bad.png");
        assert!(matches!(write_gray_png(&bad, 3, 2, &[0; 5]), Err(RasterError::BufferSize { .. })));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn truncated_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.png");
        write_rgb_png(&path, 8, 8, &[7; 192]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = read_rgb(&path).unwrap_err().to_string();
        assert!(err.contains("cut.png"), "{err}");
    }
}
