//! The rewriting that makes an expression pay for its evaluation: every variable read,
//! field read and call is wrapped in `@charge`, every loop range too, and `replace` and
//! `matches` become their charged versions. What the interpreter recognises as a loop's
//! bookkeeping (the accumulator and the calls folding into it) is left as the macro wrote
//! it, so that its optimisations and cel-go's error absorption in `all`/`exists` still apply.

use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, operators};

use super::{CHARGE, NAMESPACES, REPLACE, patterns};

/// The sub-expressions of `expr`, in no particular order.
fn children(expr: &Expr) -> Vec<&IdedExpr> {
    match expr {
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .flat_map(|entry| entry_children(&entry.expr))
            .collect(),
        Expr::Struct(strct) => strct
            .entries
            .iter()
            .flat_map(|entry| entry_children(&entry.expr))
            .collect(),
        Expr::Select(select) => vec![&select.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entry_children(entry: &EntryExpr) -> Vec<&IdedExpr> {
    match entry {
        EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
        EntryExpr::StructField(field) => vec![&field.value],
    }
}

/// The depth of the tree and its highest node id, walked without recursion: the tree is
/// not yet known to be shallow.
pub(super) fn measure(root: &IdedExpr) -> (usize, u64) {
    let mut deepest = 0;
    let mut last_id = 0;
    let mut pending = vec![(root, 1)];
    while let Some((node, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        last_id = last_id.max(node.id);
        pending.extend(children(&node.expr).into_iter().map(|c| (c, depth + 1)));
    }
    (deepest, last_id)
}

/// Rewrites a parsed expression so that its evaluation pays for what it does (see the
/// module's guarantees). Recursion is safe: the tree is at most [`MAX_DEPTH`] deep.
pub(super) struct Metering {
    pub(super) next_id: u64,
}

impl Metering {
    fn node(&mut self, expr: Expr) -> IdedExpr {
        self.next_id += 1;
        IdedExpr {
            id: self.next_id,
            expr,
        }
    }

    fn charged(&mut self, expr: IdedExpr) -> IdedExpr {
        self.node(Expr::Call(CallExpr {
            func_name: CHARGE.to_string(),
            target: None,
            args: vec![expr],
        }))
    }

    pub(super) fn expr(&mut self, expr: IdedExpr) -> IdedExpr {
        let IdedExpr { id, expr } = expr;
        match expr {
            Expr::Literal(_) | Expr::Unspecified => IdedExpr { id, expr },
            // Accumulators (`@result`) are the comprehensions' own; they stay as written so
            // that the interpreter recognises its loop shapes.
            Expr::Ident(ref name) if name.starts_with('@') => IdedExpr { id, expr },
            Expr::Ident(_) => self.charged(IdedExpr { id, expr }),
            Expr::Select(mut select) => {
                select.operand = Box::new(self.expr(*select.operand));
                self.charged(IdedExpr {
                    id,
                    expr: Expr::Select(select),
                })
            }
            Expr::Call(call) => {
                let call = self.call(call);
                self.charged(IdedExpr {
                    id,
                    expr: Expr::Call(call),
                })
            }
            Expr::Comprehension(comprehension) => IdedExpr {
                id,
                expr: Expr::Comprehension(Box::new(self.comprehension(*comprehension))),
            },
            Expr::List(mut list) => {
                list.elements = list.elements.into_iter().map(|e| self.expr(e)).collect();
                IdedExpr {
                    id,
                    expr: Expr::List(list),
                }
            }
            Expr::Map(mut map) => {
                for entry in &mut map.entries {
                    self.entry(&mut entry.expr);
                }
                IdedExpr {
                    id,
                    expr: Expr::Map(map),
                }
            }
            Expr::Struct(mut strct) => {
                for entry in &mut strct.entries {
                    self.entry(&mut entry.expr);
                }
                IdedExpr {
                    id,
                    expr: Expr::Struct(strct),
                }
            }
        }
    }

    fn entry(&mut self, entry: &mut EntryExpr) {
        match entry {
            EntryExpr::MapEntry(entry) => {
                entry.key = self.expr(std::mem::take(&mut entry.key));
                entry.value = self.expr(std::mem::take(&mut entry.value));
            }
            EntryExpr::StructField(field) => {
                field.value = self.expr(std::mem::take(&mut field.value));
            }
        }
    }

    fn call(&mut self, call: CallExpr) -> CallExpr {
        let CallExpr {
            func_name,
            target,
            args,
        } = call;
        let target = target.map(|target| match target.expr {
            Expr::Ident(ref name) if NAMESPACES.contains(&name.as_str()) => target,
            _ => Box::new(self.expr(*target)),
        });
        let args: Vec<IdedExpr> = args.into_iter().map(|a| self.expr(a)).collect();
        match target {
            Some(receiver) if func_name == "replace" && matches!(args.len(), 2 | 3) => CallExpr {
                func_name: REPLACE.to_string(),
                target: None,
                args: std::iter::once(*receiver).chain(args).collect(),
            },
            Some(receiver) if func_name == "matches" && args.len() == 1 => CallExpr {
                func_name: patterns::MATCHES.to_string(),
                target: None,
                args: std::iter::once(*receiver).chain(args).collect(),
            },
            None if func_name == "matches" && args.len() == 2 => CallExpr {
                func_name: patterns::MATCHES.to_string(),
                target: None,
                args,
            },
            target => CallExpr {
                func_name,
                target,
                args,
            },
        }
    }

    /// The range is charged by its size, which pays for the iterations; the loop's own
    /// bookkeeping is left as the macro wrote it.
    fn comprehension(&mut self, mut c: ComprehensionExpr) -> ComprehensionExpr {
        let range = self.expr(std::mem::take(&mut c.iter_range));
        c.iter_range = self.charged(range);
        c.loop_step = self.step(std::mem::take(&mut c.loop_step), &c.accu_var);
        c
    }

    /// A loop step: the calls that fold into the accumulator stay unmetered (their shape
    /// is what the interpreter optimises), what they fold in is metered.
    fn step(&mut self, step: IdedExpr, accu: &str) -> IdedExpr {
        let IdedExpr { id, expr } = step;
        match expr {
            Expr::Call(mut call) if call.target.is_none() => {
                let conditional = call.func_name == operators::CONDITIONAL;
                let folds = call
                    .args
                    .iter()
                    .any(|arg| matches!(&arg.expr, Expr::Ident(name) if name == accu));
                if !conditional && !folds {
                    return self.expr(IdedExpr {
                        id,
                        expr: Expr::Call(call),
                    });
                }
                call.args = call
                    .args
                    .into_iter()
                    .enumerate()
                    .map(|(index, arg)| match &arg.expr {
                        Expr::Ident(name) if name == accu => arg,
                        _ if conditional && index > 0 => self.step(arg, accu),
                        _ => self.expr(arg),
                    })
                    .collect();
                IdedExpr {
                    id,
                    expr: Expr::Call(call),
                }
            }
            expr => self.expr(IdedExpr { id, expr }),
        }
    }
}
