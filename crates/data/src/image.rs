//! A date's pixels as a dataset decodes them: 8-bit RGB from image files, or 16-bit bands of any
//! number (Sentinel-2's digital numbers), and the moves that keep dates and labels registered.

use changedet_raster::Raster;

use crate::Normalization;

/// One date, band-interleaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// 8-bit RGB (PNG, JPEG, BMP, TIFF previews).
    U8(Raster<u8>),
    /// 16-bit bands of a sensor, in the order the dataset was asked for.
    U16(Raster<u16>),
}

impl Image {
    pub fn size(&self) -> (u32, u32) {
        match self {
            Image::U8(r) => r.size(),
            Image::U16(r) => r.size(),
        }
    }

    pub fn bands(&self) -> usize {
        match self {
            Image::U8(r) => r.channels,
            Image::U16(r) => r.channels,
        }
    }

    /// The 8-bit raster, for the transforms defined on 8-bit colour images only.
    pub fn as_u8_mut(&mut self) -> Option<&mut Raster<u8>> {
        match self {
            Image::U8(r) => Some(r),
            Image::U16(_) => None,
        }
    }

    pub(crate) fn moved(&self, m: Move) -> Image {
        match self {
            Image::U8(r) => Image::U8(m.apply(r)),
            Image::U16(r) => Image::U16(m.apply(r)),
        }
    }

    /// The statistics `normalization` applies to this image (its own, when per image).
    pub fn statistics(&self, normalization: &Normalization) -> Normalization {
        match self {
            Image::U8(r) => normalization.for_values(r.data.iter().map(|&v| f32::from(v))),
            Image::U16(r) => normalization.for_values(r.data.iter().map(|&v| f32::from(v))),
        }
    }

    /// Planar (`[bands, h, w]`) model input under `normalization`, into `out`.
    pub fn write_planar(&self, normalization: &Normalization, out: &mut [f32]) {
        match self {
            Image::U8(r) => normalization.write_planar(&r.data, r.channels, out),
            Image::U16(r) => normalization.write_planar(&r.data, r.channels, out),
        }
    }
}

/// A move of pixels that applies alike to images of any type and to labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Move {
    /// The window `[x, x + w) × [y, y + h)`.
    Crop { x: u32, y: u32, w: u32, h: u32 },
    HorizontalFlip,
    VerticalFlip,
    /// 90° counter-clockwise (as `numpy.rot90`).
    Rotate90,
}

impl Move {
    pub(crate) fn apply<T: Copy>(self, r: &Raster<T>) -> Raster<T> {
        let (w, h) = (r.width as usize, r.height as usize);
        match self {
            Move::Crop { x: x0, y: y0, w, h } => remap(r, w, h, |x, y| (x + x0 as usize, y + y0 as usize)),
            Move::HorizontalFlip => remap(r, r.width, r.height, |x, y| (w - 1 - x, y)),
            Move::VerticalFlip => remap(r, r.width, r.height, |x, y| (x, h - 1 - y)),
            Move::Rotate90 => remap(r, r.height, r.width, |x, y| (w - 1 - y, x)),
        }
    }
}

fn remap<T: Copy>(r: &Raster<T>, width: u32, height: u32, source: impl Fn(usize, usize) -> (usize, usize)) -> Raster<T> {
    let c = r.channels;
    let mut data = Vec::with_capacity(width as usize * height as usize * c);
    for y in 0..height as usize {
        for x in 0..width as usize {
            let (sx, sy) = source(x, y);
            let i = (sy * r.width as usize + sx) * c;
            data.extend_from_slice(&r.data[i..i + c]);
        }
    }
    Raster::new(width, height, c, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(w: u32, h: u32) -> Raster {
        Raster::new(w, h, 1, (0..(w * h) as u8).collect())
    }

    #[test]
    fn moves_shift_pixels_as_numpy_does() {
        let r = grid(3, 2); // [[0,1,2],[3,4,5]]
        assert_eq!(Move::HorizontalFlip.apply(&r).data, [2, 1, 0, 5, 4, 3]);
        assert_eq!(Move::VerticalFlip.apply(&r).data, [3, 4, 5, 0, 1, 2]);
        let rot = Move::Rotate90.apply(&r); // np.rot90 → [[2,5],[1,4],[0,3]]
        assert_eq!((rot.width, rot.height), (2, 3));
        assert_eq!(rot.data, [2, 5, 1, 4, 0, 3]);
        assert_eq!(Move::Crop { x: 1, y: 1, w: 2, h: 1 }.apply(&r).data, [4, 5]);
    }

    #[test]
    fn sixteen_bit_images_move_band_by_band() {
        // Two bands, interleaved: band 1 is band 0 + 1000.
        let data: Vec<u16> = (0..6u16).flat_map(|v| [v, v + 1000]).collect();
        let image = Image::U16(Raster::new(3, 2, 2, data));
        let Image::U16(turned) = image.moved(Move::Rotate90) else { panic!("stays 16-bit") };
        assert_eq!(turned.data, [2, 1002, 5, 1005, 1, 1001, 4, 1004, 0, 1000, 3, 1003]);
        let mut planar = vec![0f32; 12];
        image.write_planar(&Normalization::PER_IMAGE.for_values([0f32, 1000.0].into_iter()), &mut planar);
        assert!(planar[..6].iter().all(|&v| v < 0.0) && planar[6..].iter().all(|&v| v > 0.0), "{planar:?}");
    }
}
