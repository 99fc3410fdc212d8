//! Statistics per region and period: settlements, medical cost, fund paid, payout ratio (the
//! national platform publishes 58.9 % for cross-province inpatient care in 2022), and the
//! advances spared: what people treated outside their region did not have to pay up front and
//! claim back, because the funds paid at the window.

use std::collections::BTreeMap;

use onestop_core::{Date, Fen, Region, VisitType};
use serde::Serialize;

use crate::{Entry, Sums, region_code, yuan};

/// How statistics group visits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Bucket {
    Inpatient,
    Outpatient,
    LongTermCare,
}

impl Bucket {
    pub const ALL: [Bucket; 3] = [Bucket::Inpatient, Bucket::Outpatient, Bucket::LongTermCare];

    pub fn of(visit: VisitType) -> Bucket {
        match visit {
            VisitType::Inpatient => Bucket::Inpatient,
            VisitType::GeneralOutpatient | VisitType::ChronicOutpatient => Bucket::Outpatient,
            VisitType::LtcInstitutional | VisitType::LtcHome => Bucket::LongTermCare,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Bucket::Inpatient => "inpatient",
            Bucket::Outpatient => "outpatient",
            Bucket::LongTermCare => "long_term_care",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Bucket::Inpatient => "住院",
            Bucket::Outpatient => "门诊",
            Bucket::LongTermCare => "长期护理",
        }
    }
}

/// The fund's share of the medical cost, to a tenth of a percent, rounded half up: `58.9%`.
/// `None` when there was no cost.
pub fn payout_ratio(fund: Fen, cost: Fen) -> Option<String> {
    if cost.0 <= 0 {
        return None;
    }
    let (fund, cost) = (i128::from(fund.0), i128::from(cost.0));
    let tenths = (fund * 2000 + cost) / (2 * cost);
    Some(format!("{}.{}%", tenths / 10, tenths % 10))
}

/// Sums over a period of every settlement booked, by insured region and bucket, by region of
/// treatment for people from elsewhere, and for each region's people treated elsewhere.
#[derive(Clone, Debug)]
pub struct Statistics {
    pub from: Date,
    pub to: Date,
    insured: BTreeMap<(Region, Bucket), Sums>,
    elsewhere: BTreeMap<(Region, Bucket), Sums>,
    visitors: BTreeMap<(Region, Bucket), Sums>,
}

impl Statistics {
    pub fn new(from: Date, to: Date) -> Statistics {
        assert!(from <= to, "a period starts before it ends");
        let maps = BTreeMap::new;
        Statistics { from, to, insured: maps(), elsewhere: maps(), visitors: maps() }
    }

    /// Counts an entry; `false` (and nothing counted) when it was booked outside the period.
    pub fn add(&mut self, entry: &Entry) -> bool {
        if entry.booked_on < self.from || self.to < entry.booked_on {
            return false;
        }
        let bucket = Bucket::of(entry.visit);
        self.insured.entry((entry.insured, bucket)).or_default().add(entry);
        if entry.insured != entry.treatment {
            self.elsewhere.entry((entry.insured, bucket)).or_default().add(entry);
            self.visitors.entry((entry.treatment, bucket)).or_default().add(entry);
        }
        true
    }

    pub fn merge(&mut self, other: &Statistics) {
        assert_eq!((self.from, self.to), (other.from, other.to), "only one period merges");
        for (mine, theirs) in [
            (&mut self.insured, &other.insured),
            (&mut self.elsewhere, &other.elsewhere),
            (&mut self.visitors, &other.visitors),
        ] {
            for (key, sums) in theirs {
                mine.entry(*key).or_default().merge(sums);
            }
        }
    }

    /// The statistics of one region: a line per bucket and a line for all.
    pub fn region(&self, region: Region) -> RegionStatistics {
        let get = |map: &BTreeMap<(Region, Bucket), Sums>, bucket| {
            map.get(&(region, bucket)).copied().unwrap_or_default()
        };
        let mut lines: Vec<StatisticsLine> = Bucket::ALL
            .iter()
            .map(|bucket| {
                let sums =
                    [&self.insured, &self.elsewhere, &self.visitors].map(|m| get(m, *bucket));
                StatisticsLine::new(bucket.code(), bucket.zh(), sums)
            })
            .collect();
        let mut all = [Sums::default(); 3];
        for bucket in Bucket::ALL {
            for (sum, map) in all.iter_mut().zip([&self.insured, &self.elsewhere, &self.visitors]) {
                sum.merge(&get(map, bucket));
            }
        }
        lines.push(StatisticsLine::new("all", "合计", all));
        RegionStatistics { region, from: self.from.to_string(), to: self.to.to_string(), lines }
    }
}

/// One region's statistics for a period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionStatistics {
    #[serde(serialize_with = "region_code")]
    pub region: Region,
    pub from: String,
    pub to: String,
    pub lines: Vec<StatisticsLine>,
}

/// One bucket of a region's statistics. Counts and sums are net of reversals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatisticsLine {
    pub bucket: &'static str,
    pub bucket_zh: &'static str,
    /// The region's people, wherever treated.
    pub insured: Sums,
    /// The fund's share of their medical cost (基金支付比例).
    pub payout_ratio: Option<String>,
    /// Of them, care outside the region (异地就医), settled directly.
    pub cross_region: Sums,
    pub cross_region_payout_ratio: Option<String>,
    /// What those people did not have to advance (减少垫资): fund and personal account paid at
    /// the window elsewhere.
    #[serde(serialize_with = "yuan")]
    pub advances_spared: Fen,
    /// People of other regions treated at this region's institutions.
    pub visitors: Sums,
}

impl StatisticsLine {
    fn new(bucket: &'static str, bucket_zh: &'static str, sums: [Sums; 3]) -> StatisticsLine {
        let [insured, cross_region, visitors] = sums;
        StatisticsLine {
            bucket,
            bucket_zh,
            payout_ratio: payout_ratio(insured.fund, insured.medical_cost),
            insured,
            cross_region_payout_ratio: payout_ratio(cross_region.fund, cross_region.medical_cost),
            advances_spared: cross_region.payable(),
            cross_region,
            visitors,
        }
    }
}
