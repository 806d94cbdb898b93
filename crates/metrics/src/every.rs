//! Every convention's accumulator at once, fed the same maps: what `changedet metrics` and
//! `eval` report for semantic change models.

use crate::{BinaryConfusion, ClearScdAccumulator, MetricsError, ScdAccumulator, ScdConvention, ScdMaps};

#[derive(Clone, Debug)]
pub struct EveryConvention {
    /// The change masks alone (255 in the ground truth: unlabelled).
    pub binary: BinaryConfusion,
    pub second: ScdAccumulator,
    pub fromto: ScdAccumulator,
    pub clearscd: ClearScdAccumulator,
}

impl EveryConvention {
    pub fn new(classes: usize) -> Self {
        EveryConvention {
            binary: BinaryConfusion::default(),
            second: ScdAccumulator::new(ScdConvention::Second, classes),
            fromto: ScdAccumulator::new(ScdConvention::FromTo, classes),
            clearscd: ClearScdAccumulator::new(classes),
        }
    }

    /// One pair's semantic-change maps, into every convention.
    pub fn add(&mut self, maps: &ScdMaps) -> Result<(), MetricsError> {
        self.binary.accumulate(maps.pred_change, maps.gt_change, Some(255))?;
        self.second.add(maps)?;
        self.fromto.add(maps)?;
        self.clearscd.add(maps)
    }

    /// Joins the counts of another chunk of pairs.
    pub fn merge(mut self, other: EveryConvention) -> Self {
        self.binary.merge(&other.binary);
        self.second.merge(&other.second);
        self.fromto.merge(&other.fromto);
        self.clearscd.merge(&other.clearscd);
        self
    }
}
