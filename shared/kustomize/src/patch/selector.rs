//! Kubernetes label selectors (`labels.Parse` of apimachinery): the grammar, its error texts,
//! and matching against a label (or annotation) map.

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    In,
    NotIn,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    End,
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Ident(s) => s,
            Token::Not => "!",
            Token::Eq => "=",
            Token::DoubleEq => "==",
            Token::NotEq => "!=",
            Token::In => "in",
            Token::NotIn => "notin",
            Token::Gt => ">",
            Token::Lt => "<",
            Token::Open => "(",
            Token::Close => ")",
            Token::Comma => ",",
            Token::End => "",
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// apimachinery's lexer: whitespace separates, special characters form operators, anything
/// else runs into an identifier (`in` and `notin` are keywords).
fn tokens(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if is_special(c) {
            let mut op = String::new();
            while let Some(&c) = chars.peek() {
                if !is_special(c) {
                    break;
                }
                let mut next = op.clone();
                next.push(c);
                if !matches!(
                    next.as_str(),
                    "=" | "==" | "!" | "!=" | "(" | ")" | "," | ">" | "<"
                ) {
                    break;
                }
                op = next;
                chars.next();
            }
            out.push(match op.as_str() {
                "=" => Token::Eq,
                "==" => Token::DoubleEq,
                "!" => Token::Not,
                "!=" => Token::NotEq,
                "(" => Token::Open,
                ")" => Token::Close,
                "," => Token::Comma,
                ">" => Token::Gt,
                _ => Token::Lt,
            });
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || is_special(c) {
                break;
            }
            word.push(c);
            chars.next();
        }
        out.push(match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Ident(word),
        });
    }
    out.push(Token::End);
    out
}

#[derive(Debug)]
enum Op {
    Exists,
    DoesNotExist,
    Equals,
    NotEquals,
    In,
    NotIn,
    Gt,
    Lt,
}

#[derive(Debug)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

fn fail(msg: String) -> Error {
    Error::msg(format!("unable to parse requirement: {msg}"))
}

impl Parser {
    fn peek(&self) -> &Token {
        self.toks.get(self.pos).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    fn requirement(&mut self) -> Result<Requirement> {
        let mut op = None;
        if *self.peek() == Token::Not {
            self.next();
            op = Some(Op::DoesNotExist);
        }
        let key = match self.next() {
            Token::Ident(k) => k,
            t => {
                return Err(fail(format!("found '{}', expected: identifier", t.text())));
            }
        };
        if let Some(op) = op {
            return Ok(Requirement {
                key,
                op,
                values: Vec::new(),
            });
        }
        let op = match self.peek() {
            Token::End | Token::Comma => {
                return Ok(Requirement {
                    key,
                    op: Op::Exists,
                    values: Vec::new(),
                });
            }
            Token::Eq | Token::DoubleEq => Op::Equals,
            Token::NotEq => Op::NotEquals,
            Token::In => Op::In,
            Token::NotIn => Op::NotIn,
            Token::Gt => Op::Gt,
            Token::Lt => Op::Lt,
            t => {
                return Err(fail(format!(
                    "found '{}', expected: !=, =, ==, >, <, in, notin",
                    t.text()
                )));
            }
        };
        self.next();
        let values = match op {
            Op::In | Op::NotIn => self.set()?,
            _ => match self.peek() {
                Token::Ident(v) => {
                    let v = v.clone();
                    self.next();
                    vec![v]
                }
                Token::End | Token::Comma => vec![String::new()],
                t => {
                    return Err(fail(format!("found '{}', expected: identifier", t.text())));
                }
            },
        };
        Ok(Requirement { key, op, values })
    }

    fn set(&mut self) -> Result<Vec<String>> {
        let t = self.next();
        if t != Token::Open {
            return Err(fail(format!("found '{}' expected: '('", t.text())));
        }
        let mut values = Vec::new();
        loop {
            match self.next() {
                Token::Ident(v) => {
                    values.push(v);
                    match self.next() {
                        Token::Comma => continue,
                        Token::Close => return Ok(values),
                        t => {
                            return Err(fail(format!(
                                "found '{}', expected: ',' or ')'",
                                t.text()
                            )));
                        }
                    }
                }
                Token::Close => {
                    values.push(String::new());
                    return Ok(values);
                }
                Token::Comma => {
                    values.push(String::new());
                }
                t => {
                    return Err(fail(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        t.text()
                    )));
                }
            }
        }
    }
}

fn parse(sel: &str) -> Result<Vec<Requirement>> {
    let mut p = Parser {
        toks: tokens(sel),
        pos: 0,
    };
    let mut out = Vec::new();
    if *p.peek() == Token::End {
        return Ok(out);
    }
    loop {
        out.push(p.requirement()?);
        match p.next() {
            Token::End => return Ok(out),
            Token::Comma => {}
            t => {
                return Err(Error::msg(format!(
                    "found '{}', expected: ',' or 'end of string'",
                    t.text()
                )));
            }
        }
    }
}

/// Whether `labels` satisfy a Kubernetes label selector (`a=b,c!=d,e in (x,y),!f,g`).
pub fn matches(sel: &str, labels: &[(String, String)]) -> Result<bool> {
    let get = |k: &str| {
        labels
            .iter()
            .find(|(lk, _)| lk == k)
            .map(|(_, v)| v.as_str())
    };
    for r in parse(sel)? {
        let v = get(&r.key);
        let number = |s: &str| s.parse::<i64>().ok();
        let ok = match r.op {
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
            Op::Equals | Op::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
            Op::NotEquals | Op::NotIn => v.is_none_or(|v| !r.values.iter().any(|x| x == v)),
            Op::Gt | Op::Lt => {
                match (v.and_then(number), r.values.first().and_then(|x| number(x))) {
                    (Some(have), Some(bound)) => {
                        if matches!(r.op, Op::Gt) {
                            have > bound
                        } else {
                            have < bound
                        }
                    }
                    _ => false,
                }
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_as_apimachinery_does() {
        let labels = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ];
        for (sel, want) in [
            ("a=1", true),
            ("a == 1", true),
            ("a!=1", false),
            ("b in (2,3)", true),
            ("b notin ( 3 )", true),
            ("c", false),
            ("!c", true),
            ("a=1,b=3", false),
            ("a>0,b<3", true),
            ("", true),
        ] {
            assert_eq!(matches(sel, &labels).expect("valid"), want, "{sel}");
        }
        let err = matches("a in 1", &labels).expect_err("needs a set");
        assert!(
            err.to_string()
                .contains("unable to parse requirement: found '1' expected: '('"),
            "{err}"
        );
    }
}
