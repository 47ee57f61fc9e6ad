//! End-to-end tests: the real broker on an ephemeral loopback port, driven by rumqttc and by raw bytes.
//! One binary, one module per area (the spec clause each test checks is named in it).

mod common;

mod admin_api;
mod admin_browser;
mod api;
mod auth;
mod backpressure;
mod cli;
mod connect;
mod keepalive;
mod malformed;
mod mosquitto_clients;
mod placement;
mod publish;
mod retain;
mod session;
mod smoke;
mod subscribe;
mod topics;
mod will;
