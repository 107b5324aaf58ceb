{
  # The syncer's transactional producer (src/kafka_txn.c): plain Node-API over librdkafka's C API.
  # It links the librdkafka.so.1 that @confluentinc/kafka-javascript built at npm ci
  # (scripts/build-kafka-client.mjs), found at run time through a relative rpath: the repository
  # and the release bundle both have native/ beside node_modules/.
  "variables": {
    "ckjs%": "<!(node -p \"require('path').dirname(require.resolve('@confluentinc/kafka-javascript/package.json'))\")",
  },
  "targets": [
    {
      "target_name": "kafka_txn",
      "sources": ["src/kafka_txn.c"],
      "include_dirs": ["<(ckjs)/deps/librdkafka/src"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-ignored-qualifiers"],
      "libraries": [
        "-L<(ckjs)/build/deps",
        "-l:librdkafka.so.1",
        "-lpthread",
        "-Wl,-rpath,'$$ORIGIN/../../../../node_modules/@confluentinc/kafka-javascript/build/deps'",
        # dist/ inside a checkout (npm run build): native/ is copied into dist/, node_modules is one level up.
        "-Wl,-rpath,'$$ORIGIN/../../../../../node_modules/@confluentinc/kafka-javascript/build/deps'",
      ],
    }
  ],
}
