//! `sets.contains`, `sets.equivalent` and `sets.intersects`, the list-as-set functions of
//! the environment Flux evaluates `healthCheckExprs` in (cel-go's sets extension), which
//! the CEL crate does not have. Each compares every element of one list with every element
//! of the other, so each is charged for those comparisons before it makes them.

use cel::common::types::{CelBool, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::{BUDGET, deep_size, spend};

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(
        "sets.contains",
        "list_sets_contains_list",
        vec![LIST_TYPE, LIST_TYPE],
        contains,
    )?;
    env.add_overload(
        "sets.equivalent",
        "list_sets_equivalent_list",
        vec![LIST_TYPE, LIST_TYPE],
        equivalent,
    )?;
    env.add_overload(
        "sets.intersects",
        "list_sets_intersects_list",
        vec![LIST_TYPE, LIST_TYPE],
        intersects,
    )
}

type Elements<'a, 'v> = Vec<&'a (dyn Val + 'v)>;

/// The two lists of a call, paid for comparing all their elements pairwise: a comparison
/// costs at most the size of the smaller element, so all of them cost at most either
/// list's whole size times the other's length.
fn lists<'a, 'v>(
    name: &str,
    args: &'a [CowVal<'_, 'v>],
) -> Result<(Elements<'a, 'v>, Elements<'a, 'v>), ExecutionError> {
    let elements = |index: usize| -> Result<Elements<'a, 'v>, ExecutionError> {
        let iterable = args
            .get(index)
            .and_then(|arg| arg.as_iterable())
            .ok_or_else(|| ExecutionError::function_error(name, "expects two lists"))?;
        let mut items = iterable.iter();
        let mut elements = Vec::new();
        while let Some(item) = items.next() {
            elements.push(item);
        }
        Ok(elements)
    };
    let (left, right) = (elements(0)?, elements(1)?);
    let cap = BUDGET.with(std::cell::Cell::get).saturating_add(1);
    let whole = |list: &[&dyn Val]| {
        list.iter().fold(0u64, |size, item| {
            size.saturating_add(deep_size(*item, cap))
        })
    };
    let (left_len, right_len) = (left.len() as u64, right.len() as u64);
    let comparisons = left_len.saturating_mul(right_len);
    let depth =
        (whole(&left).saturating_mul(right_len)).min(whole(&right).saturating_mul(left_len));
    spend(comparisons.saturating_add(depth))?;
    Ok((left, right))
}

fn holds_all(list: &[&dyn Val], sublist: &[&dyn Val]) -> bool {
    sublist
        .iter()
        .all(|wanted| list.iter().any(|have| have.equals(*wanted)))
}

fn answer<'b, 'v>(holds: bool) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelBool::from(holds)))
}

/// Whether every element of the second list is in the first.
fn contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (list, sublist) = lists("sets.contains", &args)?;
    answer(holds_all(&list, &sublist))
}

/// Whether both lists hold the same elements, however often and in whatever order.
fn equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (left, right) = lists("sets.equivalent", &args)?;
    answer(holds_all(&left, &right) && holds_all(&right, &left))
}

/// Whether the lists share an element.
fn intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (left, right) = lists("sets.intersects", &args)?;
    answer(
        left.iter()
            .any(|have| right.iter().any(|wanted| have.equals(*wanted))),
    )
}
