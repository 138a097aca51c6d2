//! (family being added; see issue 3)

use crate::zoo::ArchSpec;

pub fn specs() -> Vec<ArchSpec> {
    Vec::new()
}
