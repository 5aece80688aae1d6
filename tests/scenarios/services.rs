//! Ledger and projector services over a real nats-server (owned by the services work).
