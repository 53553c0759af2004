//! Certificate serial numbers: 16 bytes from the OS CSPRNG, never derived
//! from the key (rcgen's default is the key's hash, so one key would always
//! get one serial).

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};

/// A certificate serial: 16 bytes, the first in `0x01..=0x7f` so that the
/// DER INTEGER is positive and minimal (exactly 16 content bytes). Written
/// as 32 lowercase hex digits everywhere.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial([u8; 16]);

impl Serial {
    /// Draws a fresh serial (120 random bits, plus the forced range of the
    /// first byte).
    ///
    /// # Errors
    ///
    /// The operating system's random source failed.
    pub fn random() -> Result<Self, ring::error::Unspecified> {
        let mut bytes = [0u8; 16];
        SystemRandom::new().fill(&mut bytes)?;
        bytes[0] = 0x01 + bytes[0] % 0x7f;
        Ok(Self(bytes))
    }

    /// Reads a serial from the big-endian bytes of a certificate's serial
    /// INTEGER. Anything that is not exactly a Sigil-format serial is `None`.
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

    #[test]
    fn random_serials_are_positive_minimal_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let serial = Serial::random().unwrap();
            assert!((0x01..=0x7f).contains(&serial.as_bytes()[0]));
            assert!(seen.insert(serial));
        }
    }

    #[test]
    fn serial_text_round_trips_as_32_lowercase_hex_digits() {
        let serial = Serial::random().unwrap();
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
