//! The policy book: every region's policy snapshots on one timeline, looked up by date.
//!
//! The loader guarantees that a region's snapshots are sorted, contiguous and non-overlapping,
//! so a lookup is a binary search and a date falls in at most one snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::civil::Date;

use crate::claim::Region;
use crate::policy::Policy;
use crate::reject::{Rejection, RejectionCode};

#[derive(Clone, Debug, Default)]
pub struct PolicyBook {
    regions: BTreeMap<Region, Vec<Arc<Policy>>>,
}

impl PolicyBook {
    /// Builds a book from snapshots. Panics if a region's snapshots overlap or leave a gap:
    /// the loader rejects those with a message before this point.
    pub fn new(snapshots: Vec<Policy>) -> PolicyBook {
        let mut regions: BTreeMap<Region, Vec<Arc<Policy>>> = BTreeMap::new();
        for snapshot in snapshots {
            regions.entry(snapshot.region).or_default().push(Arc::new(snapshot));
        }
        for timeline in regions.values_mut() {
            timeline.sort_by_key(|p| p.valid_from);
            for pair in timeline.windows(2) {
                let to = pair[0].valid_to.expect("only the last snapshot may be open-ended");
                assert_eq!(
                    to.tomorrow().ok(),
                    Some(pair[1].valid_from),
                    "snapshots are contiguous"
                );
            }
        }
        PolicyBook { regions }
    }

    pub fn regions(&self) -> impl Iterator<Item = Region> + '_ {
        self.regions.keys().copied()
    }

    /// All snapshots of a region, oldest first.
    pub fn timeline(&self, region: Region) -> &[Arc<Policy>] {
        self.regions.get(&region).map_or(&[], Vec::as_slice)
    }

    /// The snapshot in force for `region` on `date`.
    pub fn at(&self, region: Region, date: Date) -> Result<&Arc<Policy>, Rejection> {
        let Some(timeline) = self.regions.get(&region) else {
            return Err(Rejection::new(
                RejectionCode::InsuredRegionHasNoPolicy,
                format!("no policy file is loaded for region {region}"),
            ));
        };
        let index = timeline.partition_point(|p| p.valid_from <= date);
        match index.checked_sub(1).map(|i| &timeline[i]) {
            Some(policy) if policy.covers(date) => Ok(policy),
            _ => {
                let first = timeline.first().map(|p| p.valid_from);
                let last = timeline.last().and_then(|p| p.valid_to);
                let range = match (first, last) {
                    (Some(from), Some(to)) => format!("{from} to {to}"),
                    (Some(from), None) => format!("from {from}"),
                    _ => "never".to_owned(),
                };
                Err(Rejection::new(
                    RejectionCode::NoPolicyInForceOnDateOfService,
                    format!(
                        "region {region} has no policy in force on {date}; \
                         its policies cover {range}"
                    ),
                ))
            }
        }
    }
}

impl PolicyBook {
    /// Splits a claim under the policies in force on its date of service: the insured region's
    /// for every tier, the treatment region's for the catalog.
    pub fn split(
        &self,
        claim: &crate::claim::Claim,
        ytd: &crate::accumulators::Accumulators,
    ) -> Result<(crate::settlement::Settlement, &Arc<Policy>, &Arc<Policy>), Rejection> {
        let date = claim.bill.date_of_service;
        let insured = self.at(claim.person.insured_region, date)?;
        let treatment = self.at(claim.bill.treatment_region, date).map_err(|rejection| {
            Rejection::new(
                RejectionCode::TreatmentRegionHasNoCatalogInForce,
                format!("treatment region: {}", rejection.message),
            )
            .field("bill.treatment_region")
        })?;
        let settlement = crate::split::split(claim, insured, treatment, ytd)?;
        Ok((settlement, insured, treatment))
    }
}
