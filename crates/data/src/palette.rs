//! Colours of land-cover classes, for writing class maps as images and reading RGB-coded labels.

pub type Rgb = [u8; 3];

/// Hi-UCD after the reference preparation (class − 1): water, grass, building, greenhouse,
/// road, bridge, others, bare land, woodland, as ClearSCD's `test.py` paints them.
pub const HIUCD: [Rgb; 9] = [
    [0, 153, 255],
    [202, 255, 122],
    [255, 0, 0],
    [230, 0, 255],
    [255, 230, 0],
    [255, 181, 197],
    [0, 255, 230],
    [175, 122, 255],
    [0, 255, 0],
];

/// SECOND's six land-cover classes as its label files colour them, in the dataset's own order
/// (Bi-SRNet's `ST_COLORMAP` without white, which means "no change"): water, ground, low
/// vegetation, tree, building, playground. Class i of a changedet SECOND model is colour i.
pub const SECOND: [Rgb; 6] = [[0, 0, 255], [128, 128, 128], [0, 128, 0], [0, 255, 0], [128, 0, 0], [255, 0, 0]];

/// A palette for `classes` classes: Hi-UCD's for 9, SECOND's for 6, otherwise evenly spaced hues.
pub fn default_palette(classes: usize) -> Vec<Rgb> {
    match classes {
        9 => HIUCD.to_vec(),
        6 => SECOND.to_vec(),
        n => (0..n).map(|i| hue(i as f64 / n as f64)).collect(),
    }
}

/// A fully saturated colour of hue `h` ∈ [0, 1).
fn hue(h: f64) -> Rgb {
    let x = h * 6.0;
    let f = |offset: f64| {
        let k = (offset + x) % 6.0;
        let v = 1.0 - (k.min(4.0 - k).clamp(0.0, 1.0));
        (v * 255.0).round() as u8
    };
    [f(5.0), f(3.0), f(1.0)]
}

/// Class indices → interleaved RGB; indices beyond the palette are black.
pub fn colourise(classes: &[u8], palette: &[Rgb]) -> Vec<u8> {
    classes.iter().flat_map(|&c| palette.get(c as usize).copied().unwrap_or([0, 0, 0])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palettes_have_distinct_colours() {
        for n in [2, 6, 7, 9, 12] {
            let p = default_palette(n);
            assert_eq!(p.len(), n);
            let mut unique = p.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), n, "{p:?}");
        }
        assert_eq!(hue(0.0), [255, 0, 0]);
        assert_eq!(colourise(&[1, 200], &[[1, 2, 3], [4, 5, 6]]), [4, 5, 6, 0, 0, 0]);
    }
}
