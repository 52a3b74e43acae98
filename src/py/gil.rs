//! When a call releases the GIL. Releasing and retaking it costs little on its own, but while it is
//! released another Python thread may take it, and the call then waits for that thread's switch
//! interval before it can return: worth it for real work (other threads run meanwhile), a loss
//! for a batch-1 step of a few microseconds. So a call releases the GIL only from
//! [`RELEASE_MACS`] multiply-accumulates on.

use std::borrow::Cow;

use pyo3::prelude::*;

use super::errors::catch_panic;
use crate::alloc;
use crate::error::Result;
use crate::rnn::Detached;

/// The work (multiply-accumulates) from which a call releases the GIL: ~2-10 us of int8 GEMM on
/// one core, where retaking the GIL costs at most a few percent.
pub const RELEASE_MACS: usize = 1 << 20;

/// Whether a call doing `macs` multiply-accumulates releases the GIL.
pub fn releases(macs: usize) -> bool {
    macs >= RELEASE_MACS
}

/// `values` as a computation that `releases` the GIL may read them: a copy then (other Python
/// threads could change the caller's array meanwhile), else the caller's own elements.
pub fn snapshot<T: Clone>(values: &[T], releases: bool) -> Result<Cow<'_, [T]>> {
    Ok(if releases { Cow::Owned(alloc::copy_of(values)?) } else { Cow::Borrowed(values) })
}

/// Runs the `rest` of a recurrent call (see [`crate::rnn::Rnn::forward_into`]), with the GIL
/// released when `releases`. A panic goes on unwinding (with the GIL taken back) to the caller's
/// [`catch_panic`].
pub fn detach(py: Python<'_>, releases: bool, rest: &mut Detached<'_>) -> Result<()> {
    if releases {
        py.detach(rest)
    } else {
        rest()
    }
}

/// Runs `f`, with the GIL released when `releases`; a panic becomes a RuntimeError (see
/// [`catch_panic`]).
pub fn run<T: Send>(py: Python<'_>, releases: bool, f: impl FnOnce() -> Result<T> + Send) -> PyResult<T> {
    if releases {
        py.detach(|| catch_panic(f))
    } else {
        catch_panic(f)
    }
}
