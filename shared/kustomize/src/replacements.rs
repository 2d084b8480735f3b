//! `replacements`: copy a field of one object into fields of others.

use crate::build::Builder;
use crate::error::{Error, Result};
use crate::resource::Object;
use crate::yaml::Node;

pub(crate) fn run(_b: &Builder, _dir: &str, _reps: &[Node], _objs: &mut [Object]) -> Result<()> {
    Err(Error::msg(
        "replacements are not supported by this engine yet",
    ))
}
