//! SQL text built at run time: numbered placeholders and multi-row inserts,
//! for sqlx (`$n`, both engines) and rusqlite (`?n`).

/// `$first, $first+1, …` for `count` values.
pub fn placeholders(first: usize, count: usize) -> String {
    numbered('$', first, count)
}

/// `{mark}first, {mark}first+1, …` for `count` values: `$n` for sqlx, `?n`
/// for rusqlite.
fn numbered(mark: char, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("{mark}{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT INTO table (columns) VALUES (…), (…)`: `rows` rows of `count`
/// numbered values each.
pub fn insert_sql(table: &str, columns: &str, count: usize, rows: usize, mark: char) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| format!("({})", numbered(mark, row * count + 1, count)))
        .collect();
    format!(
        "INSERT INTO {table} ({columns}) VALUES {}",
        values.join(", ")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_count_from_the_first() {
        assert_eq!(super::placeholders(3, 3), "$3, $4, $5");
        assert_eq!(super::placeholders(1, 0), "");
    }

    #[test]
    fn inserts_number_their_rows_in_turn() {
        assert_eq!(
            super::insert_sql("t", "a, b, c", 3, 1, '?'),
            "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3)"
        );
        assert_eq!(
            super::insert_sql("t", "a, b", 2, 2, '$'),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }
}
