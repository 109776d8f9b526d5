//! Bounded exhaustive model check (todo).
