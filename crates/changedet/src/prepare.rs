use changedet_raster::text::count;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, ValueEnum};

use changedet_data::prepare::{prepare_hiucd, prepare_second};

#[derive(Clone, Copy, ValueEnum)]
enum Source {
    /// Hi-UCD (mini) download → ClearSCD's tiles, remapped masks and split lists (`hiucd:OUT`).
    Hiucd,
    /// SECOND → class-index and change maps (A/ B/ change/) for `changedet metrics`.
    Second,
}

/// Prepare a downloaded dataset the way the reference code expects it.
///
/// hiucd: SRC/{train,val,test}/{YEAR1,YEAR2}[/9]/*.png and SRC/SPLIT/mask_merge/YEAR1_YEAR2[/9]/
/// become OUT/SPLIT/{YEAR1_512,YEAR2_512,mask_512}/ (512×512 tiles at stride 512, named
/// `{k}_{name}`; masks: classes − 1 with 0 → 9 unlabeled, change − 1 with 0 → 255) and
/// OUT/SPLIT.txt (ClearSCD's five-path lists). Train on it with `--dataset hiucd:OUT`.
///
/// second: SRC/SPLIT/{label1,label2}/ (RGB palette) become OUT/SPLIT/{A,B}/ (classes 0..5 in
/// SECOND's order, 6 = no change) and OUT/SPLIT/change/ (0/1); `changedet metrics
/// --gt OUT/test --gt-encoding hiucd --classes 6` reads them. Train on SECOND directly with
/// `--dataset second:SRC`.
#[derive(Parser)]
pub struct Args {
    /// Which dataset SRC is.
    dataset: Source,
    /// The download's root folder.
    src: PathBuf,
    /// Output folder (created if needed).
    #[arg(long)]
    out: PathBuf,
    /// Write into an --out folder that already holds files, replacing those of the same names.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: Args) -> Result<()> {
    let holds_files = std::fs::read_dir(&args.out).is_ok_and(|mut entries| entries.next().is_some());
    if holds_files && !args.overwrite {
        anyhow::bail!("{} holds files; pass --overwrite to write into it", args.out.display());
    }
    let report = match args.dataset {
        Source::Hiucd => prepare_hiucd(&args.src, &args.out)?,
        Source::Second => prepare_second(&args.src, &args.out)?,
    };
    for (split, pairs, written) in &report.splits {
        println!("{split:<6} {} → {written} written", count(*pairs as u64, "pair"));
    }
    println!("prepared in {}", args.out.display());
    Ok(())
}
