//! The OData `$filter` dialect Microsoft Graph accepts on `auditLogs/signIns` and
//! `auditLogs/directoryAudits`: `eq ne gt ge lt le`, `in`, `startswith`, `and or not`,
//! parentheses, nested paths (`status/errorCode`), lambda `any` on collections, DateTimeOffset,
//! string, number, boolean and null literals. Anything else is an error naming the part.

use signet_model::schema::{find_graph_column, ColType, Column};
use signet_model::LogKind;

use crate::ast::{coerce, CmpOp, Expr, Literal};
use crate::{QueryError, Result};

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    /// A bare literal starting with a digit or '-': number or DateTimeOffset.
    Bare(String),
    LParen,
    RParen,
    Comma,
    Colon,
}

fn tokenize(input: &str) -> Result<Vec<(usize, Token)>> {
    let chars: Vec<(usize, char)> = input.char_indices().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push((pos, Token::LParen));
                i += 1;
            }
            ')' => {
                tokens.push((pos, Token::RParen));
                i += 1;
            }
            ',' => {
                tokens.push((pos, Token::Comma));
                i += 1;
            }
            ':' => {
                tokens.push((pos, Token::Colon));
                i += 1;
            }
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(QueryError::Syntax { position: pos, message: "unterminated string".into() })
                        }
                        Some((_, '\'')) if matches!(chars.get(i + 1), Some((_, '\''))) => {
                            text.push('\'');
                            i += 2;
                        }
                        Some((_, '\'')) => {
                            i += 1;
                            break;
                        }
                        Some((_, ch)) => {
                            text.push(*ch);
                            i += 1;
                        }
                    }
                }
                tokens.push((pos, Token::Str(text)));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].1.is_ascii_alphanumeric() || matches!(chars[i].1, ':' | '.' | '+' | '-'))
                {
                    i += 1;
                }
                tokens.push((pos, Token::Bare(chars[start..i].iter().map(|(_, c)| c).collect())));
            }
            c if c.is_alphabetic() || c == '_' || c == '$' || c == '@' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].1.is_alphanumeric() || matches!(chars[i].1, '_' | '/' | '.' | '$' | '@'))
                {
                    i += 1;
                }
                tokens.push((pos, Token::Ident(chars[start..i].iter().map(|(_, c)| c).collect())));
            }
            other => {
                return Err(QueryError::Syntax { position: pos, message: format!("unexpected character {other:?}") })
            }
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    kind: LogKind,
    tokens: Vec<(usize, Token)>,
    index: usize,
    input: &'a str,
}

/// Parses a Graph `$filter` for a log kind into a typed expression.
pub fn parse_filter(kind: LogKind, input: &str) -> Result<Expr> {
    if input.trim().is_empty() {
        return Ok(Expr::True);
    }
    let mut parser = Parser { kind, tokens: tokenize(input)?, index: 0, input };
    let expr = parser.parse_or()?;
    if let Some((pos, token)) = parser.tokens.get(parser.index) {
        return Err(QueryError::Syntax { position: *pos, message: format!("unexpected {}", describe(token)) });
    }
    Ok(expr)
}

fn describe(token: &Token) -> String {
    match token {
        Token::Ident(s) => format!("'{s}'"),
        Token::Str(s) => format!("string '{s}'"),
        Token::Bare(s) => format!("'{s}'"),
        Token::LParen => "'('".into(),
        Token::RParen => "')'".into(),
        Token::Comma => "','".into(),
        Token::Colon => "':'".into(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.index).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.index).map_or(self.input.len(), |(p, _)| *p)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.index).map(|(_, t)| t.clone());
        self.index += 1;
        token
    }

    fn syntax<T>(&self, message: impl Into<String>) -> Result<T> {
        Err(QueryError::Syntax { position: self.position(), message: message.into() })
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(s)) if s.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, wanted: Token) -> Result<()> {
        match self.next() {
            Some(t) if t == wanted => Ok(()),
            Some(t) => {
                self.index -= 1;
                self.syntax(format!("expected {}, found {}", describe(&wanted), describe(&t)))
            }
            None => self.syntax(format!("expected {}, found the end", describe(&wanted))),
        }
    }

    fn parse_or(&mut self) -> Result<Expr> {
        let mut parts = vec![self.parse_and()?];
        while self.keyword("or") {
            self.index += 1;
            parts.push(self.parse_and()?);
        }
        Ok(Expr::or(parts))
    }

    fn parse_and(&mut self) -> Result<Expr> {
        let mut parts = vec![self.parse_unary()?];
        while self.keyword("and") {
            self.index += 1;
            parts.push(self.parse_unary()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Expr::And(parts) })
    }

    fn parse_unary(&mut self) -> Result<Expr> {
        if self.keyword("not") {
            self.index += 1;
            return Ok(Expr::Not(Box::new(self.parse_unary()?)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Expr> {
        match self.next() {
            Some(Token::LParen) => {
                let inner = self.parse_or()?;
                self.expect(Token::RParen)?;
                Ok(inner)
            }
            Some(Token::Ident(name)) => {
                if matches!(self.peek(), Some(Token::LParen)) {
                    return self.parse_call(&name);
                }
                self.parse_comparison(&name)
            }
            Some(other) => {
                self.index -= 1;
                self.syntax(format!("expected a property, a function or '(', found {}", describe(&other)))
            }
            None => self.syntax("expected an expression, found the end"),
        }
    }

    fn column(&self, path: &str) -> Result<&'static Column> {
        find_graph_column(self.kind, path)
            .ok_or_else(|| QueryError::Unsupported(format!("property '{path}' (not filterable on {})", self.kind)))
    }

    fn parse_call(&mut self, name: &str) -> Result<Expr> {
        if let Some(collection) = name.strip_suffix("/any").or_else(|| name.strip_suffix("/ANY")) {
            return self.parse_any(collection);
        }
        if let Some(collection) = name.strip_suffix("/all") {
            return Err(QueryError::Unsupported(format!("lambda 'all' on '{collection}'")));
        }
        if !name.eq_ignore_ascii_case("startswith") {
            return Err(QueryError::Unsupported(format!("function '{name}'")));
        }
        self.expect(Token::LParen)?;
        let path = match self.next() {
            Some(Token::Ident(path)) => path,
            _ => {
                self.index -= 1;
                return self.syntax("startswith expects a property first");
            }
        };
        let column = self.column(&path)?;
        self.expect(Token::Comma)?;
        let prefix = match self.next() {
            Some(Token::Str(s)) => s,
            _ => {
                self.index -= 1;
                return self.syntax("startswith expects a string second");
            }
        };
        self.expect(Token::RParen)?;
        if column.ty != ColType::Str {
            return Err(QueryError::Unsupported(format!("startswith on non-text property '{path}'")));
        }
        Ok(Expr::StartsWith { column, prefix })
    }

    /// `collection/any(v: v eq 'x')` or `collection/any(v: v/prop eq 'x')`.
    fn parse_any(&mut self, collection: &str) -> Result<Expr> {
        self.expect(Token::LParen)?;
        let variable = match self.next() {
            Some(Token::Ident(v)) => v,
            _ => {
                self.index -= 1;
                return self.syntax("expected a lambda variable");
            }
        };
        self.expect(Token::Colon)?;
        let mut alternatives = Vec::new();
        loop {
            let subject = match self.next() {
                Some(Token::Ident(s)) => s,
                _ => {
                    self.index -= 1;
                    return self.syntax("expected the lambda variable");
                }
            };
            let path = if subject == variable {
                collection.to_string()
            } else if let Some(property) = subject.strip_prefix(&format!("{variable}/")) {
                format!("{collection}/{property}")
            } else {
                return Err(QueryError::Unsupported(format!(
                    "lambda body on '{subject}' (only '{variable}' is in scope)"
                )));
            };
            let column = self.column(&path)?;
            if column.ty != ColType::StrList {
                return Err(QueryError::Unsupported(format!("lambda 'any' on '{path}', which is not a collection")));
            }
            match self.next() {
                Some(Token::Ident(op)) if op.eq_ignore_ascii_case("eq") => {}
                Some(Token::Ident(op)) => {
                    return Err(QueryError::Unsupported(format!("operator '{op}' inside lambda 'any' (only eq)")))
                }
                _ => {
                    self.index -= 1;
                    return self.syntax("expected 'eq'");
                }
            }
            let value = match self.next() {
                Some(Token::Str(s)) => s,
                _ => {
                    self.index -= 1;
                    return self.syntax("expected a string");
                }
            };
            alternatives.push(Expr::ListContains { column, value });
            if self.keyword("or") {
                self.index += 1;
                continue;
            }
            break;
        }
        self.expect(Token::RParen)?;
        Ok(Expr::or(alternatives))
    }

    fn parse_comparison(&mut self, path: &str) -> Result<Expr> {
        let column = self.column(path)?;
        let op = match self.next() {
            Some(Token::Ident(op)) => op.to_ascii_lowercase(),
            Some(other) => {
                self.index -= 1;
                return self.syntax(format!("expected an operator after '{path}', found {}", describe(&other)));
            }
            None => return self.syntax(format!("expected an operator after '{path}'")),
        };
        if op == "in" {
            return self.parse_in(column);
        }
        let op = match op.as_str() {
            "eq" => CmpOp::Eq,
            "ne" => CmpOp::Ne,
            "gt" => CmpOp::Gt,
            "ge" => CmpOp::Ge,
            "lt" => CmpOp::Lt,
            "le" => CmpOp::Le,
            "has" | "add" | "sub" | "mul" | "div" | "mod" => {
                return Err(QueryError::Unsupported(format!("operator '{op}'")))
            }
            other => {
                self.index -= 1;
                return self.syntax(format!("unknown operator '{other}'"));
            }
        };
        let literal = self.parse_literal()?;
        if column.ty == ColType::StrList {
            return Err(QueryError::Unsupported(format!(
                "comparison on collection '{path}' (use {path}/any(x: x eq '...'))"
            )));
        }
        let value = coerce(column, literal)?;
        Ok(Expr::Compare { column, op, value })
    }

    fn parse_in(&mut self, column: &'static Column) -> Result<Expr> {
        self.expect(Token::LParen)?;
        let mut values = Vec::new();
        loop {
            values.push(coerce(column, self.parse_literal()?)?);
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::RParen) => break,
                _ => {
                    self.index -= 1;
                    return self.syntax("expected ',' or ')' in 'in' list");
                }
            }
        }
        if column.ty == ColType::Str {
            let strings = values
                .into_iter()
                .map(|v| match v {
                    Literal::Str(s) => s,
                    other => format!("{other:?}"),
                })
                .collect();
            return Ok(Expr::InList { column, values: strings });
        }
        Ok(Expr::or(values.into_iter().map(|value| Expr::Compare { column, op: CmpOp::Eq, value }).collect()))
    }

    fn parse_literal(&mut self) -> Result<Literal> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Literal::Str(s)),
            Some(Token::Bare(text)) => {
                if let Ok(i) = text.parse::<i64>() {
                    return Ok(Literal::Int(i));
                }
                if let Ok(f) = text.parse::<f64>() {
                    return Ok(Literal::Float(f));
                }
                signet_model::time::parse_time(&text).map(Literal::Time).or_else(|_| {
                    self.index -= 1;
                    self.syntax(format!("'{text}' is neither a number nor a DateTimeOffset"))
                })
            }
            Some(Token::Ident(word)) => match word.to_ascii_lowercase().as_str() {
                "true" => Ok(Literal::Bool(true)),
                "false" => Ok(Literal::Bool(false)),
                "null" => Ok(Literal::Null),
                _ => {
                    self.index -= 1;
                    self.syntax(format!("expected a value, found '{word}' (strings need single quotes)"))
                }
            },
            Some(other) => {
                self.index -= 1;
                self.syntax(format!("expected a value, found {}", describe(&other)))
            }
            None => self.syntax("expected a value, found the end"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{compile_expr, Dialect};
    use proptest::prelude::*;

    fn sql(filter: &str) -> String {
        compile_expr(&parse_filter(LogKind::SignIn, filter).unwrap(), Dialect::DuckDb)
    }

    #[test]
    fn graph_documentation_examples() {
        assert_eq!(sql("userPrincipalName eq 'a@b.com'"), "user_principal_name ILIKE 'a@b.com'");
        assert_eq!(
            sql("createdDateTime ge 2024-01-01T00:00:00Z and createdDateTime le 2024-01-02T00:00:00.5Z"),
            "(event_time >= TIMESTAMP '2024-01-01 00:00:00.000000' AND event_time <= TIMESTAMP '2024-01-02 00:00:00.500000')"
        );
        assert_eq!(sql("status/errorCode eq 50126"), "error_code = 50126");
        assert_eq!(sql("startswith(appDisplayName,'Graph')"), "app_display_name ILIKE 'graph%'");
        assert_eq!(sql("location/city eq 'Redmond'"), "city ILIKE 'redmond'");
        assert_eq!(sql("deviceDetail/browser eq 'Edge 80'"), "browser ILIKE 'edge 80'");
        assert_eq!(
            sql("riskEventTypes_v2/any(t: t eq 'unfamiliarFeatures')"),
            "list_contains(risk_event_types, 'unfamiliarFeatures')"
        );
        assert_eq!(
            sql("signInEventTypes/any(t: t eq 'interactiveUser' or t eq 'nonInteractiveUser')"),
            "(list_contains(event_types, 'interactiveUser') OR list_contains(event_types, 'nonInteractiveUser'))"
        );
        assert_eq!(
            sql("not (status/errorCode eq 0) and (isInteractive eq true or clientAppUsed eq 'IMAP4')"),
            "((NOT error_code = 0) AND (is_interactive = TRUE OR client_app_used ILIKE 'imap4'))"
        );
        assert_eq!(sql("appId in ('a','B')"), "lower(app_id) IN ('a', 'b')");
        assert_eq!(sql("userDisplayName eq 'O''Brien'"), "user_display_name ILIKE 'o''brien'");
    }

    #[test]
    fn directory_audit_paths() {
        let e = parse_filter(
            LogKind::DirectoryAudit,
            "initiatedBy/user/userPrincipalName eq 'x' and targetResources/any(t: t/displayName eq 'Sales')",
        )
        .unwrap();
        assert_eq!(
            compile_expr(&e, Dialect::DuckDb),
            "(initiated_by_upn ILIKE 'x' AND list_contains(target_names, 'Sales'))"
        );
    }

    #[test]
    fn unsupported_parts_are_named() {
        let err = |f: &str| parse_filter(LogKind::SignIn, f).unwrap_err().to_string();
        assert!(err("endswith(userPrincipalName,'x')").contains("function 'endswith'"));
        assert!(err("foo eq 1").contains("property 'foo'"));
        assert!(err("riskEventTypes_v2/all(t: t eq 'x')").contains("lambda 'all'"));
        assert!(err("riskEventTypes_v2/any(t: t ne 'x')").contains("operator 'ne'"));
        assert!(err("status/errorCode eq 'abc'").contains("errorCode"));
        assert!(err("userId eq abc").contains("single quotes"));
        assert!(err("(userId eq 'a'").contains("expected ')'"));
        assert!(err("userId eq 'a' userId").contains("unexpected"));
        assert!(err("userId eq 'abc").contains("unterminated"));
    }

    proptest! {
        /// Any input either parses or fails with an error; never panics.
        #[test]
        fn never_panics(input in ".{0,80}") {
            let _ = parse_filter(LogKind::SignIn, &input);
        }

        /// Any string literal survives quoting: parsing `p eq '<s>'` yields exactly `s`.
        #[test]
        fn string_literals_round_trip(s in ".{0,30}") {
            let filter = format!("userId eq '{}'", s.replace('\'', "''"));
            let expr = parse_filter(LogKind::SignIn, &filter).unwrap();
            match expr {
                Expr::Compare { value: Literal::Str(v), .. } => prop_assert_eq!(v, s),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        /// Conjunctions of generated comparisons parse to And of the same arity.
        #[test]
        fn generated_conjunctions(codes in proptest::collection::vec(0i64..1_000_000, 1..6)) {
            let filter = codes.iter().map(|c| format!("status/errorCode eq {c}")).collect::<Vec<_>>().join(" and ");
            let expr = parse_filter(LogKind::SignIn, &filter).unwrap();
            match (&expr, codes.len()) {
                (Expr::And(parts), n) => prop_assert_eq!(parts.len(), n),
                (Expr::Compare { .. }, 1) => {}
                (other, _) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
