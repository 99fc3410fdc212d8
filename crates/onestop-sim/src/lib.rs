//! onestop-sim: a synthetic pooling region, generated from a seed, for the demo, the load
//! generator and the crash test. The same seed always gives the same region and the same day.
//!
//! The mix follows the published shape of Beijing's insured population loosely (employees in
//! service and retired, residents of every age, about 5 % on assistance lists) and of hospital
//! bills (most visits outpatient with a few lines; admissions with many lines and large totals).

use onestop_api::LineDto;
use onestop_api::service::{EnrolmentRequest, RegisterInstitutionRequest, RegisterPersonRequest};
use onestop_api::wire::Scalar;
use onestop_core::{AssistanceCategory, Category, Date, HospitalLevel, Region};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// How big a region to make.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub people: usize,
    pub visits: usize,
}

/// A synthetic person, with what the generator needs to know to make their visits.
#[derive(Clone, Debug)]
pub struct SimPerson {
    pub request: RegisterPersonRequest,
    pub assistance: Option<AssistanceCategory>,
}

/// One visit to make: who, where, what kind, which lines.
#[derive(Clone, Debug)]
pub struct SimVisit {
    pub person_id: String,
    pub institution: usize,
    pub visit: &'static str,
    pub lines: Vec<LineDto>,
}

/// The region's institutions: hospitals of every level and community facilities.
pub fn institutions(region: Region) -> Vec<RegisterInstitutionRequest> {
    let plan = [
        (HospitalLevel::Level3, 4),
        (HospitalLevel::Level2, 6),
        (HospitalLevel::Level1, 6),
        (HospitalLevel::Community, 8),
    ];
    let mut out = Vec::new();
    for (level, count) in plan {
        for n in 0..count {
            let number = out.len() + 1;
            out.push(RegisterInstitutionRequest {
                institution_id: format!("H{region}{number:05}"),
                name: format!("{} {}号", level.zh(), n + 1),
                level: Scalar(level.code().to_owned()),
            });
        }
    }
    out
}

fn category_of(rng: &mut StdRng) -> (Category, u32) {
    let roll = rng.random_range(0..100);
    match roll {
        0..35 => (Category::InService, rng.random_range(22..60)),
        35..55 => (Category::Retired, rng.random_range(60..90)),
        55..70 => (Category::Elderly, rng.random_range(60..95)),
        70..90 => (Category::WorkingAge, rng.random_range(18..60)),
        _ => (Category::StudentChild, rng.random_range(1..18)),
    }
}

fn assistance_of(rng: &mut StdRng, category: Category) -> Option<AssistanceCategory> {
    if category.scheme() == onestop_core::Scheme::Employee || rng.random_range(0..100) >= 12 {
        return None;
    }
    Some(match rng.random_range(0..10) {
        0..2 => AssistanceCategory::ExtremePoverty,
        2..6 => AssistanceCategory::SubsistenceAllowance,
        6..9 => AssistanceCategory::LowIncomeEdge,
        _ => AssistanceCategory::ReturningToPovertyRisk,
    })
}

/// An 18-character identity number with a valid-looking birth date (not a real person's).
/// An 18-character identity number: region, birth date, and the serial's last four digits, so
/// that no two of the first 10,000 people share one (an identity number names one person).
fn id_number(region: Region, birth: Date, serial: usize) -> String {
    format!(
        "{region}{:04}{:02}{:02}{:04}",
        birth.year(),
        birth.month(),
        birth.day(),
        serial % 10_000
    )
}

/// The most people a synthetic region has: each has an identity number of their own.
pub const PEOPLE_MAX: usize = 10_000;

/// The region's people, enrolled for `year`; at most `PEOPLE_MAX`.
pub fn people(region: Region, count: usize, year: i16, seed: u64) -> Vec<SimPerson> {
    assert!(count <= PEOPLE_MAX, "at most {PEOPLE_MAX} people, so that identity numbers differ");
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|n| {
            let (category, age) = category_of(&mut rng);
            let birth = Date::new(
                year - i16::try_from(age).unwrap_or(40),
                rng.random_range(1..13),
                rng.random_range(1..29),
            )
            .unwrap_or(Date::constant(1970, 1, 1));
            let employee = category.scheme() == onestop_core::Scheme::Employee;
            let balance = if employee { rng.random_range(0..8_000) } else { 0 };
            let needy = !employee && rng.random_range(0..100) < 3;
            SimPerson {
                assistance: assistance_of(&mut rng, category),
                request: RegisterPersonRequest {
                    person_id: format!("P{:07}", n + 1),
                    name: format!("参保人{}", n + 1),
                    id_number: id_number(region, birth, n),
                    birth_date: birth.to_string(),
                    gender: (1 + n % 2).to_string(),
                    account_balance: Some(Scalar(balance.to_string())),
                    enrolments: vec![EnrolmentRequest {
                        year,
                        category: category.code().to_owned(),
                        needy,
                        ..EnrolmentRequest::default()
                    }],
                },
            }
        })
        .collect()
}

/// The assistance-recipient list of the people on one, as civil affairs would send it (CSV).
pub fn assistance_csv(people: &[SimPerson], year: i16) -> String {
    let mut csv = String::from("身份证号,姓名,救助类别,生效日期,截止日期\n");
    for person in people {
        if let Some(category) = person.assistance {
            csv.push_str(&format!(
                "{},{},{},{year}-01-01,\n",
                person.request.id_number,
                person.request.name,
                category.zh()
            ));
        }
    }
    csv
}

/// Unit prices in fen: most items are cheap drugs and tests, a few are operations or devices.
fn unit_price_fen(rng: &mut StdRng, inpatient: bool) -> u32 {
    let roll = rng.random_range(0..100);
    match (inpatient, roll) {
        (false, 0..80) => rng.random_range(500..15_000),
        (false, _) => rng.random_range(15_000..80_000),
        (true, 0..70) => rng.random_range(500..20_000),
        (true, 70..96) => rng.random_range(20_000..200_000),
        (true, _) => rng.random_range(200_000..3_000_000),
    }
}

fn line(rng: &mut StdRng, index: usize, inpatient: bool) -> LineDto {
    let class = match rng.random_range(0..100) {
        0..60 => "a",
        60..88 => "b",
        _ => "outside",
    };
    let quantity = rng.random_range(1..4u32);
    let price_fen = unit_price_fen(rng, inpatient);
    let unit_price = format!("{}.{:02}", price_fen / 100, price_fen % 100);
    let amount = u64::from(price_fen) * u64::from(quantity);
    LineDto {
        code: Some(format!("ITEM{:05}", rng.random_range(0..5_000) + index)),
        name: Some(format!("项目{index}")),
        class: Some(Scalar(class.to_owned())),
        quantity: Some(Scalar(quantity.to_string())),
        unit_price: Some(Scalar(unit_price)),
        amount: Some(Scalar(format!("{}.{:02}", amount / 100, amount % 100))),
        price_limit: None,
    }
}

/// A day of visits across the region's institutions.
pub fn visits(people: &[SimPerson], institutions: usize, count: usize, seed: u64) -> Vec<SimVisit> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    (0..count)
        .map(|_| {
            let person = &people[rng.random_range(0..people.len())];
            let roll = rng.random_range(0..100);
            let (visit, lines) = match roll {
                0..62 => ("general_outpatient", rng.random_range(1..10)),
                62..82 => ("chronic_outpatient", rng.random_range(2..12)),
                _ => ("inpatient", rng.random_range(15..80)),
            };
            let inpatient = visit == "inpatient";
            SimVisit {
                person_id: person.request.person_id.clone(),
                institution: rng.random_range(0..institutions),
                visit,
                lines: (0..lines).map(|index| line(&mut rng, index, inpatient)).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod identity_tests {
    use super::{PEOPLE_MAX, people};

    #[test]
    fn no_two_people_share_an_identity_number() {
        let all = people(onestop_core::Region(110_000), PEOPLE_MAX, 2024, 7);
        let numbers: std::collections::HashSet<&str> =
            all.iter().map(|p| p.request.id_number.as_str()).collect();
        assert_eq!(numbers.len(), PEOPLE_MAX);
        assert!(all.iter().all(|p| p.request.id_number.len() == 18));
    }
}
