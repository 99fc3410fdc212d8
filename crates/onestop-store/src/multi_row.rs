//! Multi-row INSERT statements, for both dialects: a settlement's counters (the person's totals
//! of the year it moves) are written as one statement (one round trip on PostgreSQL, one
//! statement run on SQLite) instead of one per counter.

use std::fmt::Write as _;

/// Rows written by one statement, well under PostgreSQL's 65,535 parameters and SQLite's 32,766.
pub(crate) const ROWS_PER_STATEMENT: usize = 64;

/// Where a column of a multi-row INSERT takes its value: a parameter shared by every row
/// (number `n`, the shared ones numbered from 1), or the row's own `i`-th value (numbered after
/// the shared ones, row by row).
#[derive(Clone, Copy)]
pub(crate) enum Column {
    Shared(usize),
    Each(usize),
}

/// How a dialect numbers its parameters: `$1` (PostgreSQL) or `?1` (SQLite).
#[derive(Clone, Copy)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

/// `head VALUES (..), (..) tail` for `rows` rows laid out as `columns`.
pub(crate) fn multi_row_insert(
    dialect: Dialect,
    head: &str,
    columns: &[Column],
    rows: usize,
    tail: &str,
) -> String {
    let shared = columns.iter().filter(|c| matches!(c, Column::Shared(_))).count();
    let each = columns.len() - shared;
    debug_assert!(
        (0..each).all(|i| columns.iter().any(|c| matches!(c, Column::Each(j) if *j == i)))
    );
    debug_assert!(columns.iter().all(|c| match c {
        Column::Shared(n) => (1..=shared).contains(n),
        Column::Each(i) => *i < each,
    }));
    assert!(rows > 0 && rows <= ROWS_PER_STATEMENT, "{rows} rows in one statement");
    let mark = match dialect {
        Dialect::Postgres => '$',
        Dialect::Sqlite => '?',
    };
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns.len() * 6 + 16);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for (index, column) in columns.iter().enumerate() {
            let number = match column {
                Column::Shared(n) => *n,
                Column::Each(i) => shared + row * each + i + 1,
            };
            let separator = if index == 0 { "" } else { ", " };
            write!(sql, "{separator}{mark}{number}").expect("writing to a String");
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

#[cfg(test)]
mod tests {
    use super::Column::{Each, Shared};
    use super::{Dialect, multi_row_insert};

    #[test]
    fn shared_values_keep_their_numbers_and_rows_follow_them() {
        let columns = [Shared(1), Each(0), Shared(2), Each(1)];
        assert_eq!(
            multi_row_insert(Dialect::Postgres, "INSERT INTO t (a, b, c, d)", &columns, 2, ""),
            "INSERT INTO t (a, b, c, d) VALUES ($1, $3, $2, $4), ($1, $5, $2, $6)"
        );
        assert_eq!(
            multi_row_insert(
                Dialect::Sqlite,
                "INSERT INTO t (a, b)",
                &[Each(0), Shared(1)],
                1,
                " ON CONFLICT DO NOTHING"
            ),
            "INSERT INTO t (a, b) VALUES (?2, ?1) ON CONFLICT DO NOTHING"
        );
    }
}
