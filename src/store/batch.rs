//! Rows bound as one JSON array per statement, cut to a size that crosses
//! the network in one write.
//!
//! sqlx does not set TCP_NODELAY on PostgreSQL connections, and over TLS
//! (sqlx's default `sslmode=prefer` takes it whenever the server offers it)
//! a statement larger than one TLS record (16 KiB) goes out as two writes.
//! Nagle's algorithm holds the second until the server acknowledges the
//! first, and the server delays that acknowledgement by up to 40 ms, waiting
//! for the rest of the statement. A burst's group commit (hundreds of event
//! bodies in one INSERT) stalled on this at every group: about 250
//! completions/s with the machine 80% idle (`strace` showed the 43 ms gap).
//! Statements kept under `MAX_PG_BYTES` never wait. SQLite has no socket:
//! one array per statement, however large.

use serde::Serialize;

use super::Backend;

/// Largest JSON argument sent to PostgreSQL in one statement: with the SQL
/// text and the other arguments, the statement still fits one TLS record.
const MAX_PG_BYTES: usize = 12 * 1024;

/// `rows` as JSON arrays, each small enough for one segment on PostgreSQL.
pub fn json_arrays<T: Serialize>(backend: Backend, rows: &[T]) -> Vec<String> {
    let limit = match backend {
        Backend::Sqlite => usize::MAX,
        Backend::Postgres => MAX_PG_BYTES,
    };
    let mut arrays = Vec::new();
    let mut current = String::from("[");
    for row in rows {
        let json = serde_json::to_string(row).expect("rows serialize");
        if current.len() > 1 && current.len() + json.len() + 1 > limit {
            current.push(']');
            arrays.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&json);
    }
    if current.len() > 1 {
        current.push(']');
        arrays.push(current);
    }
    arrays
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_stay_under_the_limit_and_keep_every_row_in_order() {
        let rows: Vec<String> = (0..500).map(|i| format!("{i:0>100}")).collect();
        let arrays = json_arrays(Backend::Postgres, &rows);
        assert!(arrays.len() > 1, "{} arrays", arrays.len());
        assert!(arrays.iter().all(|a| a.len() <= MAX_PG_BYTES));
        let back: Vec<String> = arrays
            .iter()
            .flat_map(|a| serde_json::from_str::<Vec<String>>(a).unwrap())
            .collect();
        assert_eq!(back, rows);
        assert_eq!(json_arrays(Backend::Sqlite, &rows).len(), 1);
        assert!(json_arrays::<String>(Backend::Postgres, &[]).is_empty());
    }
}
