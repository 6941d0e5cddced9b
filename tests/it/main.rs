//! One integration-test binary: black-box tests of the running bridge with
//! its simulator, a fresh SQLite store and a real RabbitMQ (`AMQP_URL`).

mod crash;
mod helpers;

mod agent;
mod api;
mod budget;
mod cli;
mod compose;
mod connections;
mod durability;
mod hostile;
mod lifecycle;
mod ops;
mod receiver;
mod schema;
mod sip;
mod storage;
mod webhook;
