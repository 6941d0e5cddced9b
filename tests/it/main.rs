//! One integration-test binary: black-box tests of the running bridge with
//! its simulator, a fresh SQLite store and a real RabbitMQ (`AMQP_URL`).

mod broker;
mod cleanup;
mod crash;
mod helpers;
mod pbx;
mod rabbitmq;
mod scripts;

mod agent;
mod alarm;
mod api;
mod budget;
mod cli;
mod cluster;
mod compose;
mod connections;
mod create;
mod durability;
mod failover;
mod hostile;
mod ids;
mod kamailio;
mod lifecycle;
mod ops;
mod placement;
mod receiver;
mod schema;
mod sip;
mod skew;
mod storage;
mod topology;
mod trust;
mod wait;
mod webhook;
