//! The typed query AST.

use signet_model::schema::{ColType, Column};
use signet_model::LogKind;

/// A literal in a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Microseconds since the epoch, UTC.
    Time(i64),
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }
}

/// A boolean filter over one kind's columns.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    True,
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// The expression is false or unknown (NULL): "exclude this value" keeps rows where the
    /// field is empty.
    NotTrue(Box<Expr>),
    /// Column compared with a literal. String equality is case-insensitive, as in Graph.
    Compare {
        column: &'static Column,
        op: CmpOp,
        value: Literal,
    },
    /// Case-insensitive prefix match on a string column.
    StartsWith {
        column: &'static Column,
        prefix: String,
    },
    /// Case-insensitive substring match on a string column.
    Contains {
        column: &'static Column,
        needle: String,
    },
    /// A list column contains the value (Graph `any(x: x eq 'v')`).
    ListContains {
        column: &'static Column,
        value: String,
    },
    /// A string column equals one of the values (case-insensitive).
    InList {
        column: &'static Column,
        values: Vec<String>,
    },
}

impl Expr {
    /// The event-time range the filter keeps, as far as its top-level conjunction says:
    /// (lowest time, highest time), inclusive, microseconds. `None`: unbounded on that side.
    pub fn time_bounds(&self) -> (Option<i64>, Option<i64>) {
        let mut bounds = (None::<i64>, None::<i64>);
        let mut visit = |e: &Expr| {
            if let Expr::Compare { column, op, value: Literal::Time(t) } = e {
                if column.name != "event_time" {
                    return;
                }
                let (low, high) = match op {
                    CmpOp::Eq => (Some(*t), Some(*t)),
                    CmpOp::Gt => (Some(t.saturating_add(1)), None),
                    CmpOp::Ge => (Some(*t), None),
                    CmpOp::Lt => (None, Some(t.saturating_sub(1))),
                    CmpOp::Le => (None, Some(*t)),
                    CmpOp::Ne => (None, None),
                };
                if let Some(low) = low {
                    bounds.0 = Some(bounds.0.map_or(low, |b: i64| b.max(low)));
                }
                if let Some(high) = high {
                    bounds.1 = Some(bounds.1.map_or(high, |b: i64| b.min(high)));
                }
            }
        };
        match self {
            Expr::And(parts) => parts.iter().for_each(&mut visit),
            other => visit(other),
        }
        bounds
    }

    pub fn and(parts: Vec<Expr>) -> Expr {
        let mut flat = Vec::new();
        for p in parts {
            match p {
                Expr::True => {}
                Expr::And(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Expr::True,
            1 => flat.pop().unwrap_or(Expr::True),
            _ => Expr::And(flat),
        }
    }

    pub fn or(parts: Vec<Expr>) -> Expr {
        match parts.len() {
            1 => parts.into_iter().next().unwrap_or(Expr::True),
            _ => Expr::Or(parts),
        }
    }

    /// Every column the expression reads.
    pub fn columns(&self, out: &mut Vec<&'static Column>) {
        match self {
            Expr::True => {}
            Expr::And(parts) | Expr::Or(parts) => parts.iter().for_each(|p| p.columns(out)),
            Expr::Not(inner) | Expr::NotTrue(inner) => inner.columns(out),
            Expr::Compare { column, .. }
            | Expr::StartsWith { column, .. }
            | Expr::Contains { column, .. }
            | Expr::ListContains { column, .. }
            | Expr::InList { column, .. } => {
                if !out.iter().any(|c| c.name == column.name) {
                    out.push(column)
                }
            }
        }
    }

    pub fn eq(column: &'static Column, value: Literal) -> Expr {
        Expr::Compare { column, op: CmpOp::Eq, value }
    }

    pub fn time_range(column: &'static Column, from_us: Option<i64>, to_us: Option<i64>) -> Expr {
        let mut parts = Vec::new();
        if let Some(from) = from_us {
            parts.push(Expr::Compare { column, op: CmpOp::Ge, value: Literal::Time(from) });
        }
        if let Some(to) = to_us {
            parts.push(Expr::Compare { column, op: CmpOp::Lt, value: Literal::Time(to) });
        }
        Expr::and(parts)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

/// A page of events: filter, order by event time (ties broken by id), keyset paging.
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub org: String,
    pub kind: LogKind,
    pub filter: Expr,
    pub order: SortOrder,
    /// Rows to return; the store fetches one more to know whether there is a next page.
    pub limit: usize,
    /// Start after this (event time, id).
    pub after: Option<(i64, String)>,
    /// Columns to return; empty means all.
    pub columns: Vec<&'static Column>,
}

/// Time bucket of an aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
    /// ISO weeks, starting Monday.
    Week,
    /// Fixed-width buckets of this many microseconds since the Unix epoch (histograms that
    /// follow a zoomed time range: minutes, five minutes, ...).
    Micros(i64),
}

/// The wall clock time groups follow: UTC, or a UTC offset that changes at given instants
/// (a time zone's daylight saving time over the range a query reads). Microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Zone {
    /// The offset before the first change (UTC + `base` = wall clock).
    pub base: i64,
    /// (the UTC instant from which it holds, the offset), ascending.
    pub changes: Vec<(i64, i64)>,
}

impl Zone {
    pub const UTC: Zone = Zone { base: 0, changes: Vec::new() };

    pub fn is_utc(&self) -> bool {
        self.base == 0 && self.changes.is_empty()
    }

    /// The offset in force at a UTC instant.
    pub fn offset_at(&self, utc: i64) -> i64 {
        self.changes.iter().rev().find(|(at, _)| *at <= utc).map_or(self.base, |&(_, offset)| offset)
    }

    /// The wall clock time at a UTC instant, as microseconds since 1970-01-01 00:00 (wall).
    pub fn local(&self, utc: i64) -> i64 {
        utc + self.offset_at(utc)
    }

    /// The first UTC instant whose wall clock time is `local`; for a wall clock time a change
    /// forward skips (a midnight that never happens), the instant of that change.
    pub fn utc(&self, local: i64) -> i64 {
        let mut offsets = vec![(i64::MIN, self.base)];
        offsets.extend(self.changes.iter().copied());
        let earliest = offsets
            .iter()
            .enumerate()
            .filter_map(|(i, &(from, offset))| {
                let until = offsets.get(i + 1).map_or(i64::MAX, |&(at, _)| at);
                let utc = local.checked_sub(offset)?;
                (from <= utc && utc < until).then_some(utc)
            })
            .min();
        earliest.unwrap_or_else(|| {
            self.changes.iter().map(|&(at, _)| at).find(|&at| self.local(at) > local).unwrap_or(local - self.base)
        })
    }
}

/// What an aggregation groups by.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupBy {
    Column(&'static Column),
    /// The start of the bucket holding the time, as wall clock microseconds in the zone (equal
    /// to the UTC instant for [`Zone::UTC`]; [`Zone::utc`] turns it back).
    TimeBucket(&'static Column, Bucket, Zone),
    /// Hour of day 0-23 on the zone's wall clock.
    HourOfDay(&'static Column, Zone),
    /// ISO day of week on the zone's wall clock, 1 = Monday .. 7 = Sunday.
    DayOfWeek(&'static Column, Zone),
    /// One group per element of a list column.
    Unnest(&'static Column),
    /// One group per listed value of a string column, matched exactly (case-sensitive, `None`
    /// for NULL); rows with any other value are left out. What a report asks once it knows
    /// its groups (the top applications' distinct users): engines may answer it with fewer
    /// hash operations than a plain grouping.
    Among(&'static Column, Vec<Option<String>>),
}

/// What an aggregation measures per group.
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    Count,
    CountIf(Expr),
    CountDistinct(&'static Column),
    /// Rows where the unnested group value is also in this list column.
    CountWhereGroupIn(&'static Column),
    MinTime(&'static Column),
    MaxTime(&'static Column),
}

/// A grouped aggregation. Results come back as rows: group values, then measures.
#[derive(Clone, Debug)]
pub struct AggQuery {
    pub org: String,
    pub kind: LogKind,
    pub filter: Expr,
    pub group_by: Vec<GroupBy>,
    pub measures: Vec<Measure>,
    /// Order by the first measure, descending (top-N), instead of by the groups.
    pub order_by_first_measure_desc: bool,
    pub limit: Option<usize>,
}

/// Several aggregations under one filter, each with its own groups and measures: what a report
/// shows. Engines may answer it in one statement that filters once; the answer is the same as
/// one [`AggQuery`] per set ([`MultiAggQuery::set`]).
#[derive(Clone, Debug)]
pub struct MultiAggQuery {
    pub org: String,
    pub kind: LogKind,
    pub filter: Expr,
    pub sets: Vec<GroupSet>,
}

/// One aggregation of a [`MultiAggQuery`]: its groups, its measures, how many rows to keep.
#[derive(Clone, Debug)]
pub struct GroupSet {
    pub group_by: Vec<GroupBy>,
    pub measures: Vec<Measure>,
    /// `Some(n)`: the `n` rows with the largest first measure (ties by the groups); `None`: every
    /// row, ordered by the groups.
    pub top: Option<usize>,
}

impl GroupSet {
    pub fn all(group_by: Vec<GroupBy>, measures: Vec<Measure>) -> GroupSet {
        GroupSet { group_by, measures, top: None }
    }

    pub fn top(group_by: Vec<GroupBy>, measures: Vec<Measure>, n: usize) -> GroupSet {
        GroupSet { group_by, measures, top: Some(n) }
    }
}

impl MultiAggQuery {
    /// Set `i` as a query of its own.
    pub fn set(&self, i: usize) -> AggQuery {
        let set = &self.sets[i];
        AggQuery {
            org: self.org.clone(),
            kind: self.kind,
            filter: self.filter.clone(),
            group_by: set.group_by.clone(),
            measures: set.measures.clone(),
            order_by_first_measure_desc: set.top.is_some(),
            limit: set.top,
        }
    }
}

/// The top values of several columns under one filter, with the number of matching events:
/// what a facet panel shows. Engines may answer it in one pass (grouping sets).
#[derive(Clone, Debug)]
pub struct FacetQuery {
    pub org: String,
    pub kind: LogKind,
    pub filter: Expr,
    /// Columns to count values of; list columns count each element.
    pub columns: Vec<&'static Column>,
    /// Values per column, most frequent first (ties by value, empty last).
    pub limit: usize,
}

/// The answer to a [`FacetQuery`].
#[derive(Clone, Debug, PartialEq)]
pub struct Facets {
    pub total: u64,
    /// Per column of the query, in its order: (value, count), most frequent first.
    pub values: Vec<Vec<(signet_model::Cell, i64)>>,
}

/// Checks that a literal fits the column's type, converting where the meaning is unambiguous.
pub fn coerce(column: &'static Column, value: Literal) -> crate::Result<Literal> {
    let bad = |message: String| crate::QueryError::InvalidValue { field: column.api.to_string(), message };
    match (column.ty, value) {
        (_, Literal::Null) => Ok(Literal::Null),
        (ColType::Str | ColType::StrList, Literal::Str(s)) => Ok(Literal::Str(s)),
        (ColType::Str, Literal::Int(i)) => Ok(Literal::Str(i.to_string())),
        (ColType::Int, Literal::Int(i)) => Ok(Literal::Int(i)),
        (ColType::Int, Literal::Str(s)) => {
            s.trim().parse().map(Literal::Int).map_err(|_| bad(format!("{s:?} is not an integer")))
        }
        (ColType::Float, Literal::Int(i)) => Ok(Literal::Float(i as f64)),
        (ColType::Float, Literal::Float(f)) => Ok(Literal::Float(f)),
        (ColType::Bool, Literal::Bool(b)) => Ok(Literal::Bool(b)),
        (ColType::Time, Literal::Time(t)) => Ok(Literal::Time(t)),
        (ColType::Time, Literal::Str(s)) => signet_model::time::parse_time(&s).map(Literal::Time).map_err(bad),
        (ty, other) => Err(bad(format!("{other:?} does not fit a {ty:?} column"))),
    }
}

#[cfg(test)]
mod tests {
    use super::Zone;

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn a_zone_turns_wall_clock_times_back_into_instants() {
        // +1 h, then +2 h from t = 10 h (a change forward), then +1 h from t = 30 h (back).
        let zone = Zone { base: HOUR, changes: vec![(10 * HOUR, 2 * HOUR), (30 * HOUR, HOUR)] };
        assert_eq!(zone.local(9 * HOUR), 10 * HOUR);
        assert_eq!(zone.local(10 * HOUR), 12 * HOUR);
        assert_eq!(zone.local(31 * HOUR), 32 * HOUR);
        for utc in [0, 9 * HOUR, 10 * HOUR, 20 * HOUR, 40 * HOUR] {
            assert_eq!(zone.utc(zone.local(utc)), utc, "{utc}");
        }
        // 11:00 wall clock never happens (10:59 -> 12:00): the change is where it would be.
        assert_eq!(zone.utc(11 * HOUR), 10 * HOUR);
        // 31:30 happens twice (at 29:30 and 30:30 UTC): the first.
        assert_eq!(zone.utc(31 * HOUR + HOUR / 2), 29 * HOUR + HOUR / 2);
        assert_eq!(Zone::UTC.utc(5), 5);
        assert!(Zone::UTC.is_utc() && !zone.is_utc());
    }
}
