//! `matches`, with the compiled pattern's size bounded, its compilation charged, and each
//! pattern compiled once per judgement. The CEL crate compiles the pattern on every call
//! with the default (large) size limit, so a loop over a costly pattern would run away
//! while being charged only for its small result.

use std::cell::RefCell;
use std::collections::HashMap;

use cel::common::types::{CelBool, CelString, STRING_TYPE};
use cel::common::value::CowVal;
use cel::{DeclarationError, Env, ExecutionError};
use regex::{Regex, RegexBuilder};

use super::spend;

/// The function the metering rewrites `s.matches(p)` and `matches(s, p)` into.
pub(super) const MATCHES: &str = "@matches";
/// What compiling one pattern costs, whatever its length: a judgement compiles at most
/// `COST_LIMIT / COMPILE_COST` patterns.
const COMPILE_COST: u64 = 5_000;
/// The largest compiled pattern, in bytes (the regex crate's default is 10 MiB).
const COMPILED_SIZE_LIMIT: usize = 256 << 10;

thread_local! {
    /// Patterns compiled on this thread, which evaluates one judgement and ends.
    static COMPILED: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(
        MATCHES,
        "matches_string_string",
        vec![STRING_TYPE, STRING_TYPE],
        matches,
    )
}

fn matches<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let text = |index: usize| {
        args.get(index)
            .and_then(|arg| arg.downcast_ref::<CelString>())
            .map(|s| s.inner())
            .ok_or_else(|| ExecutionError::function_error("matches", "expects two strings"))
    };
    let (text, pattern) = (text(0)?, text(1)?);
    let regex = COMPILED.with(|compiled| {
        if let Some(regex) = compiled.borrow().get(pattern) {
            return Ok(regex.clone());
        }
        spend(COMPILE_COST)?;
        let regex = RegexBuilder::new(pattern)
            .size_limit(COMPILED_SIZE_LIMIT)
            .build()
            .map_err(|error| ExecutionError::function_error("matches", error))?;
        compiled
            .borrow_mut()
            .insert(pattern.to_string(), regex.clone());
        Ok(regex)
    })?;
    Ok(CowVal::owned(CelBool::from(regex.is_match(text))))
}
