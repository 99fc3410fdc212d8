//! Money, ratios, quantities and prices as integers, and the named roundings that turn a
//! product or a quotient back into whole fen.
//!
//! Nothing here is floating point: a yuan amount is `Fen` (1/100 yuan), a ratio is millionths,
//! a quantity is 1/10,000 of a unit and a unit price 1/10,000 of a yuan. Every operation that
//! divides takes a [`Rounding`], so the rounding is a decision written at the call site.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// An amount of money in fen (分, 1/100 yuan). Signed so that reversals can be expressed, but
/// every amount the engine computes for a settlement is non-negative.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Fen(pub i64);

/// The largest amount the engine accepts anywhere: 10 billion yuan. Products with ratios are
/// computed in `i128`, so nothing below this bound can overflow.
pub const FEN_MAX: Fen = Fen(1_000_000_000_000);

impl Fen {
    pub const ZERO: Fen = Fen(0);

    pub fn from_yuan(yuan: i64) -> Fen {
        Fen(yuan * 100)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self × ratio`, rounded to whole fen as `rounding` says.
    pub fn mul_ratio(self, ratio: Ratio, rounding: Rounding) -> Fen {
        debug_assert!(self.0 >= 0, "ratios are applied to non-negative amounts");
        let product = i128::from(self.0) * i128::from(ratio.millionths());
        Fen(narrow(div_round(product, i128::from(Ratio::SCALE), rounding)))
    }

    /// The amount `x` such that `x × ratio = self`, rounded as `rounding` says. `ratio` must not
    /// be zero.
    pub fn div_ratio(self, ratio: Ratio, rounding: Rounding) -> Fen {
        assert!(ratio.millionths() > 0, "division by a zero ratio");
        let scaled = i128::from(self.0) * i128::from(Ratio::SCALE);
        Fen(narrow(div_round(scaled, i128::from(ratio.millionths()), rounding)))
    }

    pub fn min(self, other: Fen) -> Fen {
        Ord::min(self, other)
    }

    pub fn max(self, other: Fen) -> Fen {
        Ord::max(self, other)
    }

    /// `max(self - other, 0)`.
    pub fn saturating_excess(self, other: Fen) -> Fen {
        Fen((self.0 - other.0).max(0))
    }

    /// Parses a yuan amount written with at most two decimals: `1300`, `1300.5`, `-0.05`.
    pub fn parse_yuan(text: &str) -> Result<Fen, MoneyParseError> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (unsigned, ""),
        };
        let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_ok(whole) || !digits_ok(fraction) {
            return Err(MoneyParseError::NotANumber);
        }
        if unsigned.contains('.') && fraction.is_empty() {
            return Err(MoneyParseError::NotANumber);
        }
        if fraction.len() > 2 {
            return Err(MoneyParseError::MoreThanTwoDecimals);
        }
        if whole.len() > 12 {
            return Err(MoneyParseError::TooLarge);
        }
        let whole: i64 = whole.parse().map_err(|_| MoneyParseError::NotANumber)?;
        let mut cents: i64 = if fraction.is_empty() { 0 } else { fraction.parse().unwrap_or(0) };
        if fraction.len() == 1 {
            cents *= 10;
        }
        let fen = Fen(whole * 100 + cents);
        if fen > FEN_MAX {
            return Err(MoneyParseError::TooLarge);
        }
        Ok(if negative { -fen } else { fen })
    }
}

fn narrow(value: i128) -> i64 {
    i64::try_from(value).expect("amounts are bounded by FEN_MAX, so products fit in i64")
}

/// Why a text is not an amount of yuan.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MoneyParseError {
    NotANumber,
    MoreThanTwoDecimals,
    TooLarge,
}

impl fmt::Display for MoneyParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MoneyParseError::NotANumber => "is not an amount of yuan such as 1300 or 1300.50",
            MoneyParseError::MoreThanTwoDecimals => "has more than two decimals (fen)",
            MoneyParseError::TooLarge => "exceeds 10,000,000,000 yuan",
        })
    }
}

/// Prints yuan with two decimals: `7395.00`, `-0.05`.
impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written into a buffer on the stack: amounts are printed millions of times (every
        // explanation of every settlement), and a heap string each time showed in profiles.
        let mut buffer = [0u8; 24];
        let mut at = buffer.len();
        let abs = self.0.unsigned_abs();
        // Fen first (two digits, then the point), then yuan: at least one digit.
        let mut rest = abs;
        let mut digits = 0;
        while digits < 4 || rest > 0 {
            at -= 1;
            if digits == 2 {
                buffer[at] = b'.';
            } else {
                buffer[at] = b'0' + u8::try_from(rest % 10).expect("a digit");
                rest /= 10;
            }
            digits += 1;
        }
        if self.0 < 0 {
            at -= 1;
            buffer[at] = b'-';
        }
        f.pad(std::str::from_utf8(&buffer[at..]).expect("ASCII digits"))
    }
}

impl Add for Fen {
    type Output = Fen;
    fn add(self, rhs: Fen) -> Fen {
        Fen(self.0 + rhs.0)
    }
}

impl Sub for Fen {
    type Output = Fen;
    fn sub(self, rhs: Fen) -> Fen {
        Fen(self.0 - rhs.0)
    }
}

impl Neg for Fen {
    type Output = Fen;
    fn neg(self) -> Fen {
        Fen(-self.0)
    }
}

impl AddAssign for Fen {
    fn add_assign(&mut self, rhs: Fen) {
        self.0 += rhs.0;
    }
}

impl SubAssign for Fen {
    fn sub_assign(&mut self, rhs: Fen) {
        self.0 -= rhs.0;
    }
}

impl Sum for Fen {
    fn sum<I: Iterator<Item = Fen>>(iter: I) -> Fen {
        iter.fold(Fen::ZERO, Add::add)
    }
}

/// How a quotient that is not whole is brought to whole units. Published Chinese examples use
/// 四舍五入 (half away from zero), which is the default everywhere.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Rounding {
    /// 四舍五入: 0.5 fen and above rounds up (away from zero).
    #[default]
    HalfUp,
    /// Banker's rounding: ties go to the even neighbour.
    HalfEven,
    /// Truncation toward zero (舍去).
    Down,
    /// Away from zero whenever there is a remainder (进一).
    Up,
}

impl Rounding {
    pub const ALL: [Rounding; 4] =
        [Rounding::HalfUp, Rounding::HalfEven, Rounding::Down, Rounding::Up];

    pub fn name(self) -> &'static str {
        match self {
            Rounding::HalfUp => "half_up",
            Rounding::HalfEven => "half_even",
            Rounding::Down => "down",
            Rounding::Up => "up",
        }
    }
}

/// `numerator / denominator` rounded as `rounding` says; `denominator` must be positive.
/// Computed in 64 bits when both fit, which is nearly always (a 128-bit division is several
/// times slower), else in 128 bits.
pub fn div_round(numerator: i128, denominator: i128, rounding: Rounding) -> i128 {
    assert!(denominator > 0, "the denominator of a rounded division must be positive");
    match (i64::try_from(numerator), i64::try_from(denominator)) {
        (Ok(numerator), Ok(denominator)) => {
            i128::from(div_round_i64(numerator, denominator, rounding))
        }
        _ => div_round_i128(numerator, denominator, rounding),
    }
}

macro_rules! div_round_for {
    ($name:ident, $int:ty) => {
        fn $name(numerator: $int, denominator: $int, rounding: Rounding) -> $int {
            let quotient = numerator / denominator;
            let remainder = numerator % denominator;
            if remainder == 0 {
                return quotient;
            }
            let away = if numerator < 0 { -1 } else { 1 };
            let twice = 2 * remainder.abs();
            let round_away = match rounding {
                Rounding::Down => false,
                Rounding::Up => true,
                Rounding::HalfUp => twice >= denominator,
                Rounding::HalfEven => {
                    twice > denominator || (twice == denominator && quotient % 2 != 0)
                }
            };
            if round_away { quotient + away } else { quotient }
        }
    };
}

div_round_for!(div_round_i64, i64);
div_round_for!(div_round_i128, i128);

/// A ratio in millionths: `Ratio::ONE` is 100 %. Payment ratios lie in `0..=1`; factors (a
/// deductible halved, a personal share scaled) use the same type and may exceed one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Ratio(u32);

impl Ratio {
    pub const SCALE: u32 = 1_000_000;
    pub const ZERO: Ratio = Ratio(0);
    pub const ONE: Ratio = Ratio(Ratio::SCALE);
    /// Factors above ten are certainly typing mistakes.
    pub const FACTOR_MAX: Ratio = Ratio(10 * Ratio::SCALE);

    pub const fn from_millionths(millionths: u32) -> Ratio {
        Ratio(millionths)
    }

    pub const fn from_percent(percent: u32) -> Ratio {
        Ratio(percent * 10_000)
    }

    pub fn millionths(self) -> u32 {
        self.0
    }

    /// Adds `points` percentage points (negative to cut), clamped to `0..=1`.
    pub fn plus_points(self, points_millionths: i64) -> Ratio {
        let value = (i64::from(self.0) + points_millionths).clamp(0, i64::from(Ratio::SCALE));
        Ratio(u32::try_from(value).unwrap_or(Ratio::SCALE))
    }

    /// `self × other`, rounded half up to the millionth.
    pub fn times(self, other: Ratio) -> Ratio {
        let product = u64::from(self.0) * u64::from(other.0);
        let rounded = (product + u64::from(Ratio::SCALE / 2)) / u64::from(Ratio::SCALE);
        Ratio(u32::try_from(rounded).unwrap_or(u32::MAX))
    }

    /// `1 - self`, for a ratio in `0..=1`.
    pub fn complement(self) -> Ratio {
        debug_assert!(self <= Ratio::ONE);
        Ratio(Ratio::SCALE - self.0.min(Ratio::SCALE))
    }

    /// Parses `85%`, `85.5%`, `0.85`, `1` or `0`, with at most six decimals of a fraction.
    pub fn parse(text: &str) -> Result<Ratio, RatioParseError> {
        let (number, scale_digits) = match text.strip_suffix('%') {
            Some(number) => (number.trim_end(), 4usize),
            None => (text, 6usize),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_ok(whole) || !digits_ok(fraction) || whole.len() > 4 {
            return Err(RatioParseError::NotARatio);
        }
        if number.contains('.') && fraction.is_empty() {
            return Err(RatioParseError::NotARatio);
        }
        if fraction.len() > scale_digits {
            return Err(RatioParseError::TooPrecise);
        }
        let whole: u64 = whole.parse().map_err(|_| RatioParseError::NotARatio)?;
        let mut fraction_value: u64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| RatioParseError::NotARatio)?
        };
        for _ in fraction.len()..scale_digits {
            fraction_value *= 10;
        }
        let unit = 10u64.pow(u32::try_from(scale_digits).unwrap_or(6));
        let millionths = whole * unit + fraction_value;
        let millionths = u32::try_from(millionths).map_err(|_| RatioParseError::NotARatio)?;
        Ok(Ratio(millionths))
    }
}

/// Why a text is not a ratio.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RatioParseError {
    NotARatio,
    TooPrecise,
}

impl fmt::Display for RatioParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RatioParseError::NotARatio => "is not a ratio such as \"85%\" or 0.85",
            RatioParseError::TooPrecise => "is more precise than a millionth",
        })
    }
}

/// Prints a ratio as a percentage with as few decimals as needed: `85%`, `99.1%`.
impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 10_000;
        let mut fraction = self.0 % 10_000;
        let mut width = 4;
        while fraction != 0 && fraction.is_multiple_of(10) {
            fraction /= 10;
            width -= 1;
        }
        // Straight into the output unless a width asks for padding: ratios are printed on
        // every line of every explanation.
        match (f.width(), fraction) {
            (None, 0) => write!(f, "{whole}%"),
            (None, _) => write!(f, "{whole}.{fraction:0width$}%"),
            (Some(_), 0) => f.pad(&format!("{whole}%")),
            (Some(_), _) => f.pad(&format!("{whole}.{fraction:0width$}%")),
        }
    }
}

/// A quantity of a billed item in 1/10,000 of its unit (tablets, days, grams).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Quantity(pub i64);

impl Quantity {
    pub const SCALE: i64 = 10_000;
    pub const ONE: Quantity = Quantity(Quantity::SCALE);
    /// A million units on one line is a typing mistake.
    pub const MAX: Quantity = Quantity(1_000_000 * Quantity::SCALE);

    pub fn parse(text: &str) -> Result<Quantity, DecimalParseError> {
        parse_scaled(text, 4).map(Quantity)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format_scaled(self.0, 4))
    }
}

/// A unit price in 1/10,000 yuan: catalogs publish prices with up to four decimals.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct UnitPrice(pub i64);

impl UnitPrice {
    pub const SCALE: i64 = 10_000;

    pub fn parse(text: &str) -> Result<UnitPrice, DecimalParseError> {
        parse_scaled(text, 4).map(UnitPrice)
    }

    pub fn from_fen(fen: Fen) -> UnitPrice {
        UnitPrice(fen.0 * (UnitPrice::SCALE / 100))
    }

    /// `quantity × self` in fen, rounded as `rounding` says.
    pub fn extend(self, quantity: Quantity, rounding: Rounding) -> Fen {
        let product = i128::from(quantity.0) * i128::from(self.0);
        let per_fen = i128::from(Quantity::SCALE) * i128::from(UnitPrice::SCALE / 100);
        Fen(narrow(div_round(product, per_fen, rounding)))
    }
}

impl fmt::Display for UnitPrice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format_scaled(self.0, 4);
        // Prices read best with at least two decimals, as yuan.
        let text = match text.split_once('.') {
            None => format!("{text}.00"),
            Some((_, fraction)) if fraction.len() == 1 => format!("{text}0"),
            Some(_) => text,
        };
        f.pad(&text)
    }
}

/// Why a text is not a non-negative decimal of the expected precision.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecimalParseError {
    NotANumber,
    TooPrecise,
    TooLarge,
}

impl fmt::Display for DecimalParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecimalParseError::NotANumber => "is not a decimal number",
            DecimalParseError::TooPrecise => "has more than four decimals",
            DecimalParseError::TooLarge => "is too large",
        })
    }
}

fn parse_scaled(text: &str, decimals: usize) -> Result<i64, DecimalParseError> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits_ok(whole) || !digits_ok(fraction) {
        return Err(DecimalParseError::NotANumber);
    }
    if text.contains('.') && fraction.is_empty() {
        return Err(DecimalParseError::NotANumber);
    }
    if fraction.len() > decimals {
        return Err(DecimalParseError::TooPrecise);
    }
    if whole.len() > 12 {
        return Err(DecimalParseError::TooLarge);
    }
    let whole: i64 = whole.parse().map_err(|_| DecimalParseError::NotANumber)?;
    let mut fraction_value: i64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| DecimalParseError::NotANumber)?
    };
    for _ in fraction.len()..decimals {
        fraction_value *= 10;
    }
    let scale = 10i64.pow(u32::try_from(decimals).unwrap_or(4));
    Ok(whole * scale + fraction_value)
}

fn format_scaled(value: i64, decimals: u32) -> String {
    let scale = 10i64.pow(decimals);
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.abs();
    let mut fraction = abs % scale;
    if fraction == 0 {
        return format!("{sign}{}", abs / scale);
    }
    let mut width = decimals as usize;
    while fraction % 10 == 0 {
        fraction /= 10;
        width -= 1;
    }
    format!("{sign}{}.{fraction:0width$}", abs / scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_round_trips() {
        for (text, fen, shown) in [
            ("1300", 130_000, "1300.00"),
            ("1300.5", 130_050, "1300.50"),
            ("0.05", 5, "0.05"),
            ("-0.05", -5, "-0.05"),
            ("613449.15", 61_344_915, "613449.15"),
        ] {
            let parsed = Fen::parse_yuan(text).expect(text);
            assert_eq!(parsed, Fen(fen), "{text}");
            assert_eq!(parsed.to_string(), shown);
        }
        for bad in ["", ".5", "1.", "1.234", "1e3", "abc", "1,000", "+1", "10000000000000"] {
            assert!(Fen::parse_yuan(bad).is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn fen_print_at_the_edges_and_pad() {
        for (fen, shown) in [
            (0, "0.00"),
            (7, "0.07"),
            (-7, "-0.07"),
            (100, "1.00"),
            (-123_456, "-1234.56"),
            (i64::MAX, "92233720368547758.07"),
            (i64::MIN, "-92233720368547758.08"),
        ] {
            assert_eq!(Fen(fen).to_string(), shown, "{fen}");
        }
        assert_eq!(format!("{:>8}|{:<6}|", Fen(150), Fen(-5)), "    1.50|-0.05 |");
    }

    #[test]
    fn ratios_parse_and_print() {
        for (text, millionths, shown) in [
            ("85%", 850_000, "85%"),
            ("0.85", 850_000, "85%"),
            ("99.1%", 991_000, "99.1%"),
            ("1", 1_000_000, "100%"),
            ("0.123456", 123_456, "12.3456%"),
            ("0", 0, "0%"),
        ] {
            let ratio = Ratio::parse(text).expect(text);
            assert_eq!(ratio.millionths(), millionths, "{text}");
            assert_eq!(ratio.to_string(), shown);
        }
        assert_eq!(
            format!("{:>7}|{:<4}|", Ratio::from_percent(85), Ratio::from_percent(5)),
            "    85%|5%  |"
        );
        assert_eq!(Ratio::parse("0.1234567"), Err(RatioParseError::TooPrecise));
        assert_eq!(Ratio::parse("85.12345%"), Err(RatioParseError::TooPrecise));
        assert!(Ratio::parse("-0.5").is_err());
    }

    #[test]
    fn roundings_differ_only_where_they_should() {
        // 31.77 × 10 % = 3.177 → 3.18 (the published class-B first self-pay).
        let ten = Ratio::from_percent(10);
        assert_eq!(Fen(3177).mul_ratio(ten, Rounding::HalfUp), Fen(318));
        assert_eq!(Fen(3177).mul_ratio(ten, Rounding::Down), Fen(317));
        // 5 fen × 50 % = 2.5 fen: a tie.
        let half = Ratio::from_percent(50);
        assert_eq!(Fen(5).mul_ratio(half, Rounding::HalfUp), Fen(3));
        assert_eq!(Fen(5).mul_ratio(half, Rounding::HalfEven), Fen(2));
        assert_eq!(Fen(7).mul_ratio(half, Rounding::HalfEven), Fen(4));
        assert_eq!(Fen(5).mul_ratio(half, Rounding::Down), Fen(2));
        assert_eq!(Fen(5).mul_ratio(half, Rounding::Up), Fen(3));
        assert_eq!(div_round(-5, 2, Rounding::HalfUp), -3);
        // The 128-bit path rounds as the 64-bit one does.
        let big = i128::from(i64::MAX) * 10 + 5;
        assert_eq!(div_round(big, 10, Rounding::HalfUp), i128::from(i64::MAX) + 1);
        assert_eq!(div_round(big, 10, Rounding::HalfEven), i128::from(i64::MAX) + 1);
        assert_eq!(div_round(big, 10, Rounding::Down), i128::from(i64::MAX));
    }

    #[test]
    fn prices_extend_to_fen() {
        let price = UnitPrice::parse("40").expect("price");
        let days = Quantity::parse("30").expect("quantity");
        assert_eq!(price.extend(days, Rounding::HalfUp), Fen(120_000));
        let price = UnitPrice::parse("0.3333").expect("price");
        let count = Quantity::parse("3").expect("quantity");
        assert_eq!(price.extend(count, Rounding::HalfUp), Fen(100));
        assert_eq!(price.to_string(), "0.3333");
        assert_eq!(UnitPrice::parse("35").expect("price").to_string(), "35.00");
    }
}
