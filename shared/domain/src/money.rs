//! Money in whole Korean won. There is no smaller unit in circulation and no
//! floating point anywhere in billing: every amount is an `i64` of won.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

use serde::{Deserialize, Serialize};

/// An amount of Korean won (KRW). Negative amounts appear only on discount
/// and rounding lines.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Krw(pub i64);

impl Krw {
    pub const ZERO: Krw = Krw(0);

    pub const fn won(self) -> i64 {
        self.0
    }

    /// `self × num ÷ den`, rounded down (towards negative infinity), computed
    /// in 128 bits so no intermediate product can overflow.
    ///
    /// This is the single rounding rule of the billing engine: every
    /// proration, percentage and VAT amount is the exact rational value
    /// rounded down to the won.
    ///
    /// # Panics
    /// Never for `den > 0`; a zero denominator returns zero rather than
    /// panicking, because no rule divides by a count that can be zero
    /// without meaning "nothing applies".
    pub fn mul_div_floor(self, num: i64, den: i64) -> Krw {
        if den == 0 {
            return Krw::ZERO;
        }
        let p = i128::from(self.0) * i128::from(num);
        let d = i128::from(den);
        let q = p.div_euclid(d);
        // Amounts are bounded far below i64::MAX by input validation; clamp
        // instead of wrapping should a caller ever exceed that.
        Krw(q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// `percent`% of `self`, rounded down.
    pub fn percent_floor(self, percent: u32) -> Krw {
        self.mul_div_floor(i64::from(percent), 100)
    }

    /// Rounds down to a multiple of `unit` won (`unit` ≥ 1).
    pub fn floor_to(self, unit: i64) -> Krw {
        if unit <= 1 {
            return self;
        }
        Krw(self.0.div_euclid(unit) * unit)
    }

    pub fn min(self, other: Krw) -> Krw {
        Krw(self.0.min(other.0))
    }

    pub fn max(self, other: Krw) -> Krw {
        Krw(self.0.max(other.0))
    }
}

impl Add for Krw {
    type Output = Krw;
    fn add(self, rhs: Krw) -> Krw {
        Krw(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Krw {
    type Output = Krw;
    fn sub(self, rhs: Krw) -> Krw {
        Krw(self.0.saturating_sub(rhs.0))
    }
}

impl AddAssign for Krw {
    fn add_assign(&mut self, rhs: Krw) {
        *self = *self + rhs;
    }
}

impl SubAssign for Krw {
    fn sub_assign(&mut self, rhs: Krw) {
        *self = *self - rhs;
    }
}

impl Neg for Krw {
    type Output = Krw;
    fn neg(self) -> Krw {
        Krw(self.0.saturating_neg())
    }
}

impl Sum for Krw {
    fn sum<I: Iterator<Item = Krw>>(iter: I) -> Krw {
        iter.fold(Krw::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Krw> for Krw {
    fn sum<I: Iterator<Item = &'a Krw>>(iter: I) -> Krw {
        iter.copied().sum()
    }
}

/// Formats as on a Korean bill: `12,345원`, `-3,000원`.
impl fmt::Display for Krw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.unsigned_abs().to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 4);
        if self.0 < 0 {
            out.push('-');
        }
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        out.push('원');
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_thousands_separators() {
        assert_eq!(Krw(0).to_string(), "0원");
        assert_eq!(Krw(999).to_string(), "999원");
        assert_eq!(Krw(1_000).to_string(), "1,000원");
        assert_eq!(Krw(12_345).to_string(), "12,345원");
        assert_eq!(Krw(1_234_567).to_string(), "1,234,567원");
        assert_eq!(Krw(-3_000).to_string(), "-3,000원");
        assert_eq!(Krw(i64::MIN).to_string(), "-9,223,372,036,854,775,808원");
    }

    #[test]
    fn mul_div_rounds_down() {
        assert_eq!(Krw(55_000).mul_div_floor(17, 30), Krw(31_166)); // 31,166.66…
        assert_eq!(Krw(-7).mul_div_floor(1, 2), Krw(-4));
        assert_eq!(Krw(10).mul_div_floor(1, 0), Krw::ZERO);
        assert_eq!(Krw(i64::MAX).mul_div_floor(2, 2), Krw(i64::MAX));
    }

    #[test]
    fn percent_and_floor_to() {
        assert_eq!(Krw(33_333).percent_floor(10), Krw(3_333));
        assert_eq!(Krw(12_349).floor_to(10), Krw(12_340));
        assert_eq!(Krw(12_349).floor_to(1), Krw(12_349));
    }
}
