//! Wire shapes, generated from the service models by `codegen/gen_dtos.py`.

pub mod connections;
pub mod proton;

use serde::{Deserialize, Serialize};

/// An AWS timestamp on the wire: epoch seconds (with fraction) as a number. In CBOR the encoder
/// wraps it in tag 1 (see `cbor.rs`), following the output shape.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub f64);

impl From<gitsync_model::Timestamp> for Timestamp {
    fn from(t: gitsync_model::Timestamp) -> Self {
        Timestamp(t.epoch_seconds())
    }
}
