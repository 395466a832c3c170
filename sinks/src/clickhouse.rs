//! The ClickHouse sink: [`ClickHouseClient`] (HTTP interface, migrations) and [`ClickHouseSink`]
//! (the batch feeds from the event topics into the analytics tables).

mod rows;
mod service;
mod sink;

pub use rows::{Analytics, Row};
pub use service::{ClickHouseClient, ClickHouseError, JsonEachRow, MIGRATIONS};
pub use sink::{ClickHouseSink, Feed};
