//! Starting and stopping real `nats-server` processes (owned by the services work).
