//! Which instruction-set path this process runs: the best one this CPU supports, or a lower one
//! named by `FERROQ_ISA`. The paths themselves, and their kernel tables, are the kernel
//! contract's ([`crate::kernels`]); this module only selects.
//!
//! The CPU is inspected at run time only (never `target-cpu=native`), once. The environment
//! variable `FERROQ_ISA` can lower the choice (for tests and bug reports), never raise it.

use std::sync::OnceLock;

use crate::kernels::{self, Isa, Kernels};

/// Every path this CPU supports, lowest rank first (scalar is always first).
pub fn supported_isas() -> Vec<Isa> {
    let mut isas: Vec<Isa> = Isa::ALL.into_iter().filter(|isa| isa.is_supported()).collect();
    isas.sort_by_key(|isa| isa.rank());
    isas
}

/// The path chosen for this process and, when `FERROQ_ISA` could not be honoured as written,
/// a sentence saying why.
struct Selection {
    isa: Isa,
    note: Option<String>,
}

fn selection() -> &'static Selection {
    static SELECTION: OnceLock<Selection> = OnceLock::new();
    SELECTION.get_or_init(|| select(std::env::var("FERROQ_ISA").ok().as_deref()))
}

/// The best supported path no higher than `requested` (a `FERROQ_ISA` value).
fn select(requested: Option<&str>) -> Selection {
    let supported = supported_isas();
    let best = *supported.last().unwrap_or(&Isa::Scalar);
    let Some(name) = requested.map(str::trim).filter(|n| !n.is_empty()) else {
        return Selection { isa: best, note: None };
    };
    let Some(wanted) = Isa::from_name(&name.to_ascii_lowercase()) else {
        let names: Vec<&str> = Isa::ALL.iter().map(|i| i.name()).collect();
        return Selection {
            isa: best,
            note: Some(format!("FERROQ_ISA={name:?} is not a known path (one of {}); using {}", names.join(", "), best.name())),
        };
    };
    if wanted.is_supported() {
        return Selection { isa: wanted, note: None };
    }
    let same_family = |isa: &Isa| *isa == Isa::Scalar || isa.architecture() == wanted.architecture();
    let lowered = supported
        .iter()
        .copied()
        .rfind(|isa| same_family(isa) && isa.rank() <= wanted.rank())
        .unwrap_or(Isa::Scalar);
    Selection {
        isa: lowered,
        note: Some(format!(
            "FERROQ_ISA={} is not available on this CPU or build; using {} (FERROQ_ISA can only lower the choice)",
            wanted.name(),
            lowered.name()
        )),
    }
}

/// The path in use by this process.
pub fn active_isa() -> Isa {
    selection().isa
}

/// Why `FERROQ_ISA` was not honoured as written, if it was not.
pub fn isa_override_note() -> Option<&'static str> {
    selection().note.as_deref()
}

/// The kernel table of the active path.
pub fn kernels() -> &'static Kernels {
    static ACTIVE: OnceLock<Kernels> = OnceLock::new();
    ACTIVE.get_or_init(|| kernels::table(active_isa()).expect("the active path is supported by construction"))
}

/// The kernel table of any supported path (tests run every one of them side by side).
pub fn kernels_for(isa: Isa) -> Option<Kernels> {
    kernels::table(isa)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert_eq!(Isa::from_name("avx9000"), None);
    }

    #[test]
    fn scalar_is_always_supported_and_first() {
        assert_eq!(supported_isas()[0], Isa::Scalar);
    }

    #[test]
    fn the_override_can_lower_to_scalar() {
        let s = select(Some("scalar"));
        assert_eq!(s.isa, Isa::Scalar);
        assert!(s.note.is_none());
    }

    #[test]
    fn no_override_picks_the_best_path() {
        assert_eq!(select(None).isa, *supported_isas().last().unwrap());
        assert_eq!(select(Some("")).isa, *supported_isas().last().unwrap());
    }

    #[test]
    fn unknown_names_are_reported_and_ignored() {
        let s = select(Some("avx9000"));
        assert_eq!(s.isa, *supported_isas().last().unwrap());
        assert!(s.note.unwrap().contains("not a known path"));
    }

    #[test]
    fn unavailable_paths_are_lowered_never_raised() {
        for wanted in Isa::ALL {
            let s = select(Some(wanted.name()));
            assert!(s.isa.is_supported());
            assert!(s.isa == Isa::Scalar || s.isa.rank() <= wanted.rank(), "{wanted:?} -> {:?}", s.isa);
            assert_eq!(s.note.is_none(), wanted.is_supported());
        }
    }
}
