//! The nats-server harness itself: a killed server comes back on the same port with its
//! JetStream store.

use super::*;
use stockpile_tests::nats::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_keeps_its_port_and_its_store() {
    let mut nats = NatsServer::start();
    let url = nats.url();
    let client = client(&url).await;
    let js = jetstream::new(client.clone());
    js.create_stream(jetstream::stream::Config {
        name: "HARNESS".into(),
        subjects: vec!["harness.>".into()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("create a stream");
    js.publish("harness.one", "1".into()).await.expect("publish").await.expect("ack");

    tokio::task::block_in_place(|| nats.kill());
    assert!(!nats.is_running());
    assert!(std::net::TcpStream::connect(("127.0.0.1", nats.port())).is_err(), "the port is closed");
    tokio::task::block_in_place(|| nats.restart());
    assert_eq!(nats.url(), url, "same port");

    // The client reconnects by itself; the stream and its message survived.
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let messages = loop {
        match js.get_stream("HARNESS").await {
            Ok(mut stream) => break stream.info().await.expect("info").state.messages,
            Err(e) => assert!(Instant::now() < deadline, "stream not back within {REPLY_TIMEOUT:?}: {e}"),
        }
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(messages, 1);
    assert!(nats.log_tail(5).contains("Server is ready"), "the log is kept across restarts");
}
