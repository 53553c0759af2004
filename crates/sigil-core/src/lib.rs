//! What every Sigil crate shares: the parsed SPIFFE ID types and the JSON
//! shapes of the CA's HTTP API.
//!
//! ```
//! use sigil_core::{SpiffeId, TrustDomain};
//!
//! let td: TrustDomain = "example.org".parse()?;
//! let id: SpiffeId = "spiffe://example.org/agents/support/7".parse()?;
//! assert!(id.is_member_of(&td));
//! assert_eq!(id.path(), "/agents/support/7");
//! # Ok::<(), sigil_core::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod spiffe;
pub mod wire;

pub use error::Error;
pub use spiffe::{SpiffeId, TrustDomain};
