//! Certificate serial numbers: the issuance time in milliseconds, then 80
//! bits from the OS CSPRNG; never derived from the key (rcgen's default is
//! the key's hash, so one key would always get one serial).
//!
//! The time comes first so that serials sort in issuance order, as UUIDv7
//! keys do. Every certificate is looked up by serial, so the store indexes
//! them: with uniformly random serials each new certificate lands on its
//! own random page of that index, and on a store of a million
//! certificates those scattered pages cost issuance about a tenth of its
//! rate (BENCHMARKS.md, "Serials in issuance order"). In order, new serials
//! share a few pages: the index's last ones in a store begun with this
//! scheme, and one moving place among the old serials in a store that
//! began with random ones. The 80 random bits keep serials unpredictable,
//! well past the CA/Browser Forum's 64 bits, and unique: two certificates
//! of one millisecond collide with odds of 2^-80.

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

/// A certificate serial: 16 bytes, the first in `0x01..=0x7f` so that the
/// DER INTEGER is positive and minimal (exactly 16 content bytes). Written
/// as 32 lowercase hex digits everywhere.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial([u8; 16]);

/// The earliest time prefix, in milliseconds since 1970: 2^40, in late
/// 2004, whose first byte is `0x01`. An earlier clock counts as then.
const FIRST_MILLISECOND: i128 = 1 << 40;

/// The latest time prefix: just under 2^47, in the year 6429, whose first
/// byte is `0x7f`. A later clock counts as then.
const LAST_MILLISECOND: i128 = (1 << 47) - 1;

impl Serial {
    /// Draws a fresh serial for a certificate issued now.
    ///
    /// # Errors
    ///
    /// The operating system's random source failed.
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        Self::generate_at(OffsetDateTime::now_utc())
    }

    /// Draws a fresh serial for a certificate issued at `time`: 6 bytes of
    /// milliseconds since 1970, big-endian, then 10 random bytes. A time
    /// before late 2004 or after the year 6429 counts as that bound, so
    /// that the first byte stays in `0x01..=0x7f`.
    ///
    /// # Errors
    ///
    /// The operating system's random source failed.
    pub fn generate_at(time: OffsetDateTime) -> Result<Self, ring::error::Unspecified> {
        let milliseconds =
            (time.unix_timestamp_nanos() / 1_000_000).clamp(FIRST_MILLISECOND, LAST_MILLISECOND);
        let mut bytes = [0u8; 16];
        // Within the clamp the milliseconds take 47 bits: the low six bytes.
        bytes[..6].copy_from_slice(&milliseconds.to_be_bytes()[10..]);
        SystemRandom::new().fill(&mut bytes[6..])?;
        Ok(Self(bytes))
    }

    /// Reads a serial from the big-endian bytes of a certificate's serial
    /// INTEGER. Anything that is not exactly a Sigil-format serial is `None`.
    /// (Serials of earlier versions, 16 random bytes, are read alike.)
    pub fn from_der_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: [u8; 16] = bytes.try_into().ok()?;
        (0x01..=0x7f).contains(&bytes[0]).then_some(Self(bytes))
    }

    /// The serial's bytes, big-endian.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Formatted several times per issuance (the record, the audit
        // event, the response): one table lookup per digit, not sixteen
        // trips through the formatting machinery.
        let mut digits = [0u8; 32];
        hex::encode_to_slice(self.0, &mut digits).map_err(|_| fmt::Error)?;
        // Hex digits are ASCII; `from_utf8` cannot fail on them.
        f.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

impl FromStr for Serial {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const MESSAGE: &str = "a serial is 32 lowercase hex digits";
        if text.len() != 32
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(MESSAGE);
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| MESSAGE)?;
        }
        Self::from_der_bytes(&bytes).ok_or(MESSAGE)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use time::Duration;

    #[test]
    fn serials_of_one_millisecond_are_distinct() {
        let now = OffsetDateTime::now_utc();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(Serial::generate_at(now).unwrap()));
        }
    }

    #[test]
    fn serials_sort_in_issuance_order_as_bytes_and_as_text() {
        let start = OffsetDateTime::from_unix_timestamp(1_796_000_000).unwrap();
        let serials: Vec<Serial> = (0..1_000)
            .map(|i| Serial::generate_at(start + Duration::milliseconds(i)).unwrap())
            .collect();
        for pair in serials.windows(2) {
            assert!(pair[0] < pair[1], "{:?} !< {:?}", pair[0], pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
        // The first six bytes are the milliseconds; the rest is random.
        assert_eq!(
            serials[0].as_bytes()[..6],
            [0x01, 0xa2, 0x29, 0xf1, 0x28, 0x00]
        );
        assert_ne!(serials[0].as_bytes()[6..], serials[1].as_bytes()[6..]);
    }

    #[test]
    fn a_clock_before_2004_or_past_6429_still_gives_a_valid_serial() {
        let earliest = [0x01, 0x00, 0x00, 0x00, 0x00, 0x00];
        let latest = [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff];
        for (time, prefix) in [
            (OffsetDateTime::UNIX_EPOCH - Duration::days(1), earliest),
            (OffsetDateTime::UNIX_EPOCH, earliest),
            (
                OffsetDateTime::from_unix_timestamp(1_000_000_000).unwrap(),
                earliest,
            ),
            (time::PrimitiveDateTime::MIN.assume_utc(), earliest),
            (time::PrimitiveDateTime::MAX.assume_utc(), latest),
        ] {
            let serial = Serial::generate_at(time).unwrap();
            assert_eq!(serial.as_bytes()[..6], prefix, "{time:?}");
            assert_eq!(Serial::from_der_bytes(serial.as_bytes()), Some(serial));
        }
    }

    #[test]
    fn serial_text_round_trips_as_32_lowercase_hex_digits() {
        let serial = Serial::generate().unwrap();
        let text = serial.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<Serial>().unwrap(), serial);
    }

    #[test]
    fn serial_text_keeps_leading_zero_digits_and_is_lowercase() {
        let bytes = [
            0x01, 0x0a, 0x00, 0xff, 0x10, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3,
            0xb4, 0xc5,
        ];
        let serial = Serial::from_der_bytes(&bytes).unwrap();
        assert_eq!(serial.to_string(), "010a00ff102b3c4d5e6f708192a3b4c5");
        assert_eq!(
            format!("{serial:?}"),
            "Serial(010a00ff102b3c4d5e6f708192a3b4c5)"
        );
    }

    #[test]
    fn malformed_serial_text_is_refused() {
        for bad in [
            "",
            "00",
            "7F000000000000000000000000000001",
            "80000000000000000000000000000001",
            "00000000000000000000000000000001",
            "7f00000000000000000000000000000g",
            "7f0000000000000000000000000000010",
        ] {
            assert!(bad.parse::<Serial>().is_err(), "{bad:?} was accepted");
        }
    }
}
