//! One CEL expression of `spec.healthCheckExprs`: compiled once, evaluated against a live
//! object with bounded cost.
//!
//! The expression sees the object's top-level fields as variables (`apiVersion`, `metadata`,
//! `spec`, `status`, `data`, ...), as Flux's does: there is no `self`, and naming a field the
//! object lacks is an evaluation error (`has(status.x)` needs `status`). The language is CEL's
//! standard library with optional values (`status.?phase.orValue('')`), the strings extension,
//! `base64` and the `sets` functions, as in Flux's environment.
//!
//! # Guarantees
//! - Compiling and evaluating never overflow the stack: the source is at most
//!   [`MAX_SOURCE_BYTES`] with at most [`MAX_BRACKETS`] brackets, its syntax tree at most
//!   [`MAX_DEPTH`] deep, and both run on a thread of their own with room to spare (the
//!   interpreter takes tens of KiB of stack per level in a debug build).
//! - Evaluating never runs away: every call, field read, variable read and loop range is
//!   charged its result's whole size (values, nested ones included, plus the length of
//!   strings) against [`COST_LIMIT`] (see `metering`); `replace` and the `sets` functions,
//!   whose work can grow quadratically, are charged before they run; `matches` compiles a
//!   pattern once per judgement, at a fixed charge and with a bounded compiled size. Past the
//!   limit the evaluation stops with [`EvalError::CostLimit`].
//! - Memory follows the charges: a value is charged when it is made or read, so what an
//!   evaluation holds beyond the object is at most the limit plus one operation's result.

mod metering;
mod patterns;
mod sets;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::ast::IdedExpr;
use cel::common::types::{
    CelBytes, CelInt, CelMap, CelOptional, CelString, DYN_TYPE, INT_TYPE, STRING_TYPE,
};
use cel::common::value::{CowVal, Val};
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Value, extensions};
use serde_json::Value as Json;

use metering::{Metering, measure};

/// The longest expression accepted.
pub const MAX_SOURCE_BYTES: usize = 4096;
/// The most opening brackets (`(`, `[`, `{`) an expression may contain, strings included.
pub const MAX_BRACKETS: usize = 128;
/// How deep the parsed expression may nest.
pub const MAX_DEPTH: usize = 64;
/// What one evaluation may spend. Each use of a value costs its whole size (the interpreter
/// copies values deeply, e.g. into a loop's variable): an expression reading a 100 KiB
/// status a few times fits, and a runaway one stops after about a tenth of a second in a
/// release build (the interpreter takes about 0.1 µs a step), which matters as judging runs
/// on the reconciler's thread.
pub const COST_LIMIT: u64 = 1_000_000;

/// Room for the parser, which recurses on nesting before any limit of its own applies, and
/// for the interpreter, which recurses on every level of the tree.
const STACK_BYTES: usize = 16 << 20;
/// Charges its argument's whole size and returns it unchanged. `@` keeps it out of users'
/// reach.
const CHARGE: &str = "@charge";
/// `string.replace`, charged before it builds its result.
const REPLACE: &str = "@replace";
/// Names that stand for a function namespace, not a variable, as the target of a call.
const NAMESPACES: [&str; 4] = ["base64", "optional", "sets", "strings"];

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(environment()));

fn environment() -> Env {
    let mut env = Env::stdlib();
    // Fixed registrations: a failure is a programming error caught by every test.
    env.add_extension(extensions::strings)
        .expect("the strings extension registers");
    env.add_extension(extensions::encoders)
        .expect("the encoders extension registers");
    sets::register(&mut env).expect("the sets functions register");
    patterns::register(&mut env).expect("@matches registers");
    env.add_overload(CHARGE, "charge_dyn", vec![DYN_TYPE], charge)
        .expect("@charge registers");
    env.add_overload(
        REPLACE,
        "replace_string_string_string",
        vec![STRING_TYPE, STRING_TYPE, STRING_TYPE],
        replace,
    )
    .expect("@replace registers");
    env.add_overload(
        REPLACE,
        "replace_string_string_string_int",
        vec![STRING_TYPE, STRING_TYPE, STRING_TYPE, INT_TYPE],
        replace,
    )
    .expect("@replace with a count registers");
    env
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    program: Arc<IdedExpr>,
}

/// Why an expression cannot be compiled. The messages begin as Flux's do.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Not valid CEL; `message` is the parser's, with the position.
    #[error("failed to parse the CEL expression '{expression}': {message}")]
    Syntax { expression: String, message: String },
    /// Over one of the size limits.
    #[error("failed to parse the CEL expression '{expression}': {limit}")]
    TooLarge {
        expression: String,
        limit: &'static str,
    },
    /// Uses a CEL function this agent does not provide.
    #[error(
        "the CEL expression '{expression}' uses {function}(), which this agent does not support"
    )]
    Unsupported {
        expression: String,
        function: &'static str,
    },
    /// No thread could be started to parse it on.
    #[error("failed to parse the CEL expression '{expression}': no thread to parse it on")]
    NoThread {
        expression: String,
        #[source]
        source: std::io::Error,
    },
}

/// Why an expression did not yield true or false for an object.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The evaluation failed, e.g. on a field the object does not have.
    #[error("failed to evaluate the CEL expression '{expression}': {source}")]
    Execution {
        expression: String,
        #[source]
        source: ExecutionError,
    },
    /// The evaluation spent [`COST_LIMIT`].
    #[error(
        "failed to evaluate the CEL expression '{expression}': cost limit of {COST_LIMIT} exceeded"
    )]
    CostLimit { expression: String },
    /// The expression yielded something other than a boolean.
    #[error("failed to evaluate CEL expression as boolean: '{expression}'")]
    NotBoolean { expression: String },
    /// No thread could be started to evaluate it on.
    #[error("failed to evaluate the CEL expression '{expression}': no thread to evaluate it on")]
    NoThread {
        expression: String,
        #[source]
        source: std::io::Error,
    },
}

impl Expression {
    /// Parses `source`, checking the limits that keep its evaluation bounded.
    pub fn compile(source: &str) -> Result<Self, CompileError> {
        let too_large = |limit: &'static str| CompileError::TooLarge {
            expression: source.to_string(),
            limit,
        };
        if source.len() > MAX_SOURCE_BYTES {
            return Err(too_large("longer than 4096 bytes"));
        }
        if source
            .chars()
            .filter(|c| matches!(c, '(' | '[' | '{'))
            .count()
            > MAX_BRACKETS
        {
            return Err(too_large("more than 128 brackets"));
        }
        let program =
            with_room(|| prepare(source)).map_err(|thread_error| CompileError::NoThread {
                expression: source.to_string(),
                source: thread_error,
            })??;
        Ok(Self {
            source: source.to_string(),
            program: Arc::new(program),
        })
    }

    /// The expression as the user wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression holds for `object`.
    pub fn holds_for(&self, object: &Json) -> Result<bool, EvalError> {
        first_holding(&[self], object).map(|found| found.is_some())
    }

    fn evaluate(&self, context: &Context) -> Result<bool, EvalError> {
        BUDGET.with(|budget| budget.set(COST_LIMIT));
        let result = Value::resolve(&self.program, context);
        let exhausted = BUDGET.with(|budget| budget.get()) == 0;
        match result {
            Ok(Value::Bool(holds)) => Ok(holds),
            Ok(_) => Err(EvalError::NotBoolean {
                expression: self.source.clone(),
            }),
            Err(_) if exhausted => Err(EvalError::CostLimit {
                expression: self.source.clone(),
            }),
            Err(source) => Err(EvalError::Execution {
                expression: self.source.clone(),
                source,
            }),
        }
    }
}

/// The index of the first of `expressions` that holds for `object`, evaluating them in
/// order and stopping at the first error. The object is converted once and the work runs
/// on one thread; each expression has [`COST_LIMIT`] to spend.
pub fn first_holding(
    expressions: &[&Expression],
    object: &Json,
) -> Result<Option<usize>, EvalError> {
    let Some(first) = expressions.first() else {
        return Ok(None);
    };
    let evaluate_all = || {
        let mut context = Context::with_env(Arc::clone(&ENV));
        if let Json::Object(fields) = object {
            for (name, value) in fields {
                context.add_variable_from_value(name.as_str(), to_cel(value));
            }
        }
        for (index, expression) in expressions.iter().enumerate() {
            if expression.evaluate(&context)? {
                return Ok(Some(index));
            }
        }
        Ok(None)
    };
    with_room(evaluate_all).map_err(|source| EvalError::NoThread {
        expression: first.source.clone(),
        source,
    })?
}

/// Runs `work` on a thread with [`STACK_BYTES`] of stack and waits for it. A panic in
/// `work` is carried over to the caller.
fn with_room<T: Send>(work: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("cel".into())
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, work)?;
        Ok(worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// Parses, checks the depth of and meters `source`. A tree too deep is dropped here too:
/// dropping it recurses as deep as it nests.
fn prepare(source: &str) -> Result<IdedExpr, CompileError> {
    let parsed = ENV
        .parser()
        .max_recursion_depth(MAX_DEPTH as u16)
        .parse(source)
        .map_err(|errors| CompileError::Syntax {
            expression: source.to_string(),
            message: errors.to_string(),
        })?;
    // The time functions need a time-zone database that would make every `flotilla`
    // process start measurably slower; a health expression has little use for them.
    let references = parsed.references();
    if let Some(function) = ["timestamp", "duration"]
        .into_iter()
        .find(|f| references.has_function(f))
    {
        return Err(CompileError::Unsupported {
            expression: source.to_string(),
            function,
        });
    }
    let (depth, last_id) = measure(&parsed);
    if depth > MAX_DEPTH {
        return Err(CompileError::TooLarge {
            expression: source.to_string(),
            limit: "nested more than 64 levels deep",
        });
    }
    Ok(Metering { next_id: last_id }.expr(parsed))
}

thread_local! {
    /// What the evaluation running on this thread may still spend.
    static BUDGET: Cell<u64> = const { Cell::new(0) };
}

fn spend(cost: u64) -> Result<(), ExecutionError> {
    BUDGET.with(|budget| {
        let left = budget.get();
        if cost > left {
            budget.set(0);
            Err(ExecutionError::function_error(
                CHARGE,
                "cost limit exceeded",
            ))
        } else {
            budget.set(left - cost);
            Ok(())
        }
    })
}

fn charge<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args
        .pop()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    let left = BUDGET.with(Cell::get);
    spend(deep_size(value.as_ref(), left.saturating_add(1)))?;
    Ok(value)
}

/// The number of values in `value`, nested ones included, plus the length of its strings
/// and bytes; counting stops past `cap`, so that counting costs no more than it may charge.
fn deep_size(value: &dyn Val, cap: u64) -> u64 {
    let mut size = 0u64;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        if size >= cap {
            break;
        }
        size = size.saturating_add(1);
        if let Some(text) = value.downcast_ref::<CelString>() {
            size = size.saturating_add(text.inner().len() as u64);
        } else if let Some(bytes) = value.downcast_ref::<CelBytes>() {
            size = size.saturating_add(bytes.inner().len() as u64);
        } else if let Some(optional) = value.downcast_ref::<CelOptional>() {
            pending.extend(optional.inner());
        } else if let Some(map) = value.downcast_ref::<CelMap>() {
            pending.extend(map.inner().values().map(|v| v.as_ref()));
        } else if let Some(items) = value.as_iterable() {
            let mut items = items.iter();
            while let Some(item) = items.next() {
                pending.push(item);
            }
        }
    }
    size
}

/// `s.replace(from, to)` and `s.replace(from, to, n)` (n < 0: all), as the strings extension
/// has them, refusing to build a result the budget cannot pay for.
fn replace<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let text = |index: usize| {
        args.get(index)
            .and_then(|arg| arg.downcast_ref::<CelString>())
            .map(|s| s.inner())
            .ok_or_else(|| ExecutionError::function_error("replace", "expects strings"))
    };
    let (this, from, to) = (text(0)?, text(1)?, text(2)?);
    let limit = match args.get(3) {
        None => None,
        Some(n) => {
            let n = n
                .downcast_ref::<CelInt>()
                .map(|n| *n.inner())
                .ok_or_else(|| ExecutionError::function_error("replace", "expects an int"))?;
            usize::try_from(n).ok()
        }
    };
    let found = if from.is_empty() {
        this.chars().count() + 1
    } else {
        this.matches(from).count()
    };
    let replaced = limit.map_or(found, |limit| limit.min(found));
    let size =
        (this.len() - replaced * from.len()).saturating_add(replaced.saturating_mul(to.len()));
    spend(u64::try_from(size).unwrap_or(u64::MAX))?;
    let result = match limit {
        None => this.replace(from, to),
        Some(limit) => this.replacen(from, to, limit),
    };
    Ok(CowVal::owned(CelString::from(result)))
}

/// A JSON value as CEL sees it. Integers stay `int` where they fit, as in Kubernetes'
/// unstructured objects.
fn to_cel(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            (None, None) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Json::Object(fields) => Value::Map(Map::from(
            fields
                .iter()
                .map(|(k, v)| (Key::from(k.as_str()), to_cel(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn holds(source: &str, object: &Json) -> Result<bool, EvalError> {
        Expression::compile(source)
            .expect("the expression compiles")
            .holds_for(object)
    }

    fn widget() -> Json {
        json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "generation": 3},
            "spec": {"replicas": 2},
            "status": {
                "replicas": 2,
                "phase": "Running",
                "conditions": [
                    {"type": "Synced", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "Waiting"},
                ],
            },
        })
    }

    #[test]
    fn the_time_functions_are_refused_when_compiled() {
        let error =
            Expression::compile("timestamp(status.lastUpdate) > timestamp('2026-01-01T00:00:00Z')")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(
            error.contains("uses timestamp(), which this agent does not support"),
            "{error}"
        );
        assert!(Expression::compile("duration('1m') > duration('1s')").is_err());
    }

    #[test]
    fn the_objects_top_level_fields_are_the_variables() {
        let object = widget();
        assert!(holds("status.replicas == spec.replicas", &object).expect("evaluates"));
        assert!(holds("metadata.name == 'w' && kind == 'Widget'", &object).expect("evaluates"));
        assert!(
            holds(
                "status.conditions.filter(c, c.type == 'Synced').all(c, c.status == 'True')",
                &object
            )
            .expect("evaluates")
        );
        assert!(
            !holds(
                "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
                &object
            )
            .expect("evaluates")
        );
    }

    #[test]
    fn integers_compare_across_numeric_types_and_optionals_default() {
        let object = widget();
        assert!(
            holds("status.replicas > 1.5 && status.replicas == 2u", &object).expect("evaluates")
        );
        assert!(holds("status.?missing.orValue('none') == 'none'", &object).expect("evaluates"));
        assert!(holds("status.phase.lowerAscii() == 'running'", &object).expect("evaluates"));
        assert!(holds("base64.encode(b'a') == 'YQ=='", &object).expect("evaluates"));
        assert!(holds("!optional.none().hasValue()", &object).expect("evaluates"));
        assert!(holds("sets.contains(['a', 'b', 1], [1, 'a'])", &object).expect("evaluates"));
        assert!(!holds("sets.contains([1], [1, 2])", &object).expect("evaluates"));
        assert!(holds("sets.equivalent([1, 1, 2], [2, 1])", &object).expect("evaluates"));
        assert!(
            holds(
                "sets.intersects(status.conditions.map(c, c.type), ['Ready'])",
                &object
            )
            .expect("evaluates")
        );
        assert!(!holds("sets.intersects([1], [])", &object).expect("evaluates"));
        assert!(holds("type(status.phase) == string", &object).expect("evaluates"));
        assert!(holds("status.phase.replace('n', 'N') == 'RuNNiNg'", &object).expect("evaluates"));
        assert!(
            holds("status.phase.replace('n', 'N', 1) == 'RuNning'", &object).expect("evaluates")
        );
    }

    #[test]
    fn every_standard_macro_still_works_once_metered() {
        let object = widget();
        for source in [
            "status.conditions.map(c, c.type) == ['Synced', 'Ready']",
            "status.conditions.map(c, c.status == 'True', c.type) == ['Synced']",
            "status.conditions.filter(c, c.status == 'False').size() == 1",
            "status.conditions.exists_one(c, c.type == 'Ready')",
            "!status.conditions.exists_one(c, has(c.status))",
            "status.conditions.all(c, has(c.type))",
            "{'a': 1}.all(k, k == 'a')",
            "[?status.?phase, ?status.?missing] == ['Running']",
        ] {
            assert!(holds(source, &object).expect(source), "{source}");
        }
    }

    /// The outcome of `source` for `object` without metering: `Some(result)` or `None` for
    /// an error.
    fn unmetered(source: &str, object: &Json) -> Option<Value> {
        let parsed = ENV.parser().parse(source).expect(source);
        with_room(|| {
            let mut context = Context::with_env(Arc::clone(&ENV));
            if let Json::Object(fields) = object {
                for (name, value) in fields {
                    context.add_variable_from_value(name.as_str(), to_cel(value));
                }
            }
            // Functions that pay before they work (`replace`, `sets`) still need a budget.
            BUDGET.with(|budget| budget.set(COST_LIMIT));
            Value::resolve(&parsed, &context).ok()
        })
        .expect("a thread")
    }

    #[test]
    fn metering_changes_no_outcome() {
        let object = widget();
        for source in [
            "status.conditions.exists(c, c.type == 'Ready' || c.reason == 'x')",
            "status.conditions.exists(c, c.reason == 'x')",
            "status.conditions.all(c, c.reason == 'Waiting')",
            "status.conditions.all(c, c.type == 'Synced' && c.reason == 'x')",
            "status.conditions.exists_one(c, c.reason == 'Waiting')",
            "status.conditions.map(c, c.reason).size() == 2",
            "status.conditions.filter(c, c.reason == 'Waiting').size() == 1",
            "status.conditions.filter(c, has(c.reason)).map(c, c.reason) == ['Waiting']",
            "[1, 2, 3].map(x, x * 2).filter(x, x > 2) == [4, 6]",
            "{'a': [1, 2]}.a.all(x, [x].exists(y, y == x))",
            "status.phase.startsWith('Run') ? status.replicas > 1 : false",
            "status.?missing.hasValue() || status.?phase.orValue('') == 'Running'",
            "size(status.conditions) == 2 && size(status.phase) == 7",
            "int(status.replicas) + 1 == 3 && double(status.replicas) == 2.0",
            "status.phase.split('n').join('-') == 'Ru--i-g'",
            "status.phase.replace('n', '') == 'Ruig'",
            "status.phase.matches('^R.*g$')",
            "'%s/%d'.format([status.phase, status.replicas]) == 'Running/2'",
            "sets.contains(status.conditions.map(c, c.type), ['Ready'])",
            "metadata.generation / 0 == 1",
            "status.nothing == 1 || true",
            "status.nothing == 1 && false",
            "status.nothing == 1",
            "status.phase",
        ] {
            let metered = Expression::compile(source)
                .expect(source)
                .holds_for(&object);
            let plain = unmetered(source, &object);
            match (metered, plain) {
                (Ok(holds), Some(Value::Bool(plain))) => assert_eq!(holds, plain, "{source}"),
                (Err(EvalError::NotBoolean { .. }), Some(plain)) => {
                    assert!(!matches!(plain, Value::Bool(_)), "{source}")
                }
                (Err(EvalError::Execution { .. }), None) => {}
                (metered, plain) => panic!("{source}: metered {metered:?}, plain {plain:?}"),
            }
        }
    }

    #[test]
    fn a_missing_field_is_an_evaluation_error_unless_guarded() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {}});
        let error = holds("has(data.foo.bar)", &object).expect_err("data.foo is missing");
        assert!(
            error
                .to_string()
                .starts_with("failed to evaluate the CEL expression 'has(data.foo.bar)': "),
            "{error}"
        );
        assert!(matches!(
            holds("status.ready", &object),
            Err(EvalError::Execution { .. })
        ));
        assert!(!holds("has(data.foo)", &object).expect("evaluates"));
    }

    #[test]
    fn an_error_beside_a_deciding_operand_is_absorbed_as_in_cel_go() {
        let object = widget();
        assert!(
            holds(
                "status.conditions.exists(c, c.type == 'Ready' || c.reason == 'x')",
                &object
            )
            .expect("the Ready condition decides")
        );
        assert!(
            !holds(
                "status.conditions.all(c, c.type == 'Synced' && c.reason == 'x')",
                &object
            )
            .expect("the Ready condition decides")
        );
    }

    #[test]
    fn a_result_that_is_not_a_boolean_is_an_error() {
        let error = holds("status.phase", &widget()).expect_err("a string");
        assert_eq!(
            error.to_string(),
            "failed to evaluate CEL expression as boolean: 'status.phase'"
        );
    }

    #[test]
    fn syntax_errors_say_where_as_flux_does() {
        let error = Expression::compile("foo.").expect_err("not CEL");
        assert!(
            error.to_string().starts_with(
                "failed to parse the CEL expression 'foo.': ERROR: <input>:1:5: Syntax error: no viable alternative at input '.'"
            ),
            "{error}"
        );
    }

    #[test]
    fn oversized_expressions_are_refused_before_parsing() {
        let long = format!("true{}", " && true".repeat(MAX_SOURCE_BYTES / 8));
        assert!(matches!(
            Expression::compile(&long),
            Err(CompileError::TooLarge { .. })
        ));
        let nested = format!("{}true{}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(
            Expression::compile(&nested),
            Err(CompileError::TooLarge { .. })
        ));
        let chain = format!("a{}", ".b".repeat(MAX_SOURCE_BYTES / 2 - 1));
        assert!(Expression::compile(&chain).is_err());
    }

    #[test]
    fn the_deepest_accepted_expression_evaluates() {
        // `0 + 1 + ... + 1 > 0` nests one level per `+`, under the comparison.
        let chain = |levels: usize| format!("0{} > 0", " + 1".repeat(levels - 2));
        let deepest = chain(MAX_DEPTH);
        let parsed = ENV.parser().parse(&deepest).expect("parses");
        assert_eq!(measure(&parsed).0, MAX_DEPTH);
        let expression = Expression::compile(&deepest).expect("at the depth limit");
        assert!(expression.holds_for(&widget()).expect("evaluates"));
        assert!(matches!(
            Expression::compile(&chain(MAX_DEPTH + 1)),
            Err(CompileError::TooLarge { .. })
        ));
    }

    #[test]
    fn runaway_loops_stop_at_the_cost_limit() {
        let object = json!({"items": (0..100).collect::<Vec<_>>()});
        let nested = "items.all(a, items.all(b, items.all(c, items.all(d, a + b + c + d >= 0))))";
        assert!(matches!(
            holds(nested, &object),
            Err(EvalError::CostLimit { .. })
        ));
        assert!(holds("items.all(a, items.exists(b, a == b))", &object).expect("within the limit"));
    }

    #[test]
    fn a_quadratic_replace_is_refused_before_it_is_built() {
        let object = json!({"s": "x".repeat(100_000)});
        assert!(matches!(
            holds("s.replace('', s) == ''", &object),
            Err(EvalError::CostLimit { .. })
        ));
    }

    #[test]
    fn set_comparisons_are_paid_for_before_they_are_made() {
        let object = json!({"items": (0..1000).collect::<Vec<_>>()});
        assert!(matches!(
            holds("sets.equivalent(items, items)", &object),
            Err(EvalError::CostLimit { .. })
        ));
    }

    #[test]
    fn patterns_match_compile_once_and_are_bounded() {
        let object = widget();
        assert!(holds("status.phase.matches('^R[a-z]+g$')", &object).expect("evaluates"));
        assert!(holds("matches(status.phase, 'unn')", &object).expect("evaluates"));
        assert!(matches!(
            holds("status.phase.matches('(')", &object),
            Err(EvalError::Execution { .. })
        ));
        // One pattern in a loop is compiled, and paid for, once.
        let items = json!({"items": (0..1000).map(|i| format!("item-{i}")).collect::<Vec<_>>()});
        assert!(holds("items.all(i, i.matches('^item-[0-9]+$'))", &items).expect("evaluates"));
        // A pattern too large once compiled is refused.
        assert!(matches!(
            holds("'a'.matches('(((a{100}){100}){100})')", &object),
            Err(EvalError::Execution { .. })
        ));
        // Distinct patterns in a loop run out of budget.
        assert!(matches!(
            holds("items.exists(i, 'x'.matches(i))", &items),
            Err(EvalError::CostLimit { .. })
        ));
    }

    #[test]
    fn using_large_values_is_paid_for_by_their_whole_size() {
        let big: Vec<Json> = (0..2000)
            .map(|i| json!({"name": format!("n{i}"), "labels": {"a": "b"}}))
            .collect();
        let object = json!({"items": [1, 2, 3], "big": big});
        assert!(holds("big == big && !(big != big)", &object).expect("one comparison fits"));
        assert!(holds("{'name': 'n5', 'labels': {'a': 'b'}} in big", &object).expect("fits"));
        assert!(holds("big.exists(b, b.name == 'n1999')", &object).expect("one pass fits"));
        for runaway in [
            "big.all(i, big == big)",
            // Each pass of the inner loop copies every element of `big`.
            "big.all(a, big.all(b, true))",
            "big.all(a, optional.of(big).hasValue())",
        ] {
            assert!(
                matches!(holds(runaway, &object), Err(EvalError::CostLimit { .. })),
                "{runaway}"
            );
        }
    }

    #[test]
    fn every_evaluation_starts_with_a_full_budget() {
        let object = json!({"items": (0..60).collect::<Vec<_>>()});
        let expression =
            Expression::compile("items.all(a, items.exists(b, a == b))").expect("compiles");
        for _ in 0..3 {
            assert!(expression.holds_for(&object).expect("within the limit"));
        }
    }
}
