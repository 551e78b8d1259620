// swift-tools-version:6.1
import PackageDescription

// Hummingbird re-exports HTTPTypes and friends; the Gateway relies on that, so it skips
// MemberImportVisibility rather than declaring every transitive module.
let gatewaySettings: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "accord",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "accord-gateway", targets: ["Gateway"]),
        .executable(name: "accord-scheduler", targets: ["Scheduler"]),
        .executable(name: "accord-executor", targets: ["Executor"]),
        .executable(name: "accord-runner", targets: ["Runner"]),
        .executable(name: "accord", targets: ["Accord"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/vapor/multipart-kit.git", from: "4.7.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
    ],
    targets: [
        // System libraries: Debian's libnng-dev has no nng.pc, so its module map links by name.
        .systemLibrary(name: "CNNG", path: "Sources/CNNG"),
        .systemLibrary(name: "CYAML", path: "Sources/CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // The two glibc calls that need _GNU_SOURCE (atomic close-on-exec pipes, closefrom at spawn).
        .target(name: "CSupport", path: "Sources/CSupport"),

        // The layers, from the bottom. Each one names what it may use; nothing reaches up.
        //
        // Bytes and promises: what every layer needs and no layer owns.
        .target(name: "Support", swiftSettings: strict),
        // One JSON value type, a strict parser and the writer for the hand-written hot codecs.
        .target(name: "JSON", swiftSettings: strict),
        // The domain: ids, statuses, events with their versions and upcasters, and their encoding.
        .target(name: "Model", dependencies: ["JSON"], swiftSettings: strict),
        // The event log: the protocol, the file log, its record format, reader and verifier (the
        // PostgreSQL log goes beside it). Only what writes the log links it: the Scheduler and the
        // offline tool. Gateways and executors cannot open it.
        .target(name: "EventLog", dependencies: ["Model", "JSON", "Support", "CZlib"], swiftSettings: strict),
        // The event log, payloads, snapshots and leadership on PostgreSQL, for Schedulers on several
        // hosts: the same EventLog protocol as the file log, with an epoch that fences a deposed leader.
        .target(
            name: "PostgresStore",
            dependencies: [
                "EventLog", "Model", "JSON", "Support",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // Every message between processes (Gateway, Scheduler, Executor, runner), each with its codec.
        .target(name: "Wire", dependencies: ["Model", "JSON", "Support"], swiftSettings: strict),
        // The folds the API shows (status, history, logs), shared by the Gateway and the tool.
        .target(name: "ReadModels", dependencies: ["Model", "JSON"], swiftSettings: strict),
        // Starting children: the one posix_spawn, and the reaper that waits only for its own.
        .target(name: "ProcessSupport", dependencies: ["CSupport"], swiftSettings: strict),
        // YAML to flows, expressions, the interpreter: testable without a server.
        .target(
            name: "FlowLanguage", dependencies: ["Model", "JSON", "Archive", "CYAML", "ProcessSupport"],
            swiftSettings: strict),
        // nng sockets bridged to async/await.
        .target(
            name: "Transport",
            dependencies: [
                "CNNG", .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        // A deployment's CA and its components' certificates, for mutual TLS between hosts.
        .target(
            name: "Certificates",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ], swiftSettings: strict),
        // A ZIP reader for untrusted archives: limits are checked while reading.
        .target(name: "Archive", dependencies: ["CZlib"], swiftSettings: strict),

        .executableTarget(
            name: "Gateway",
            dependencies: [
                "Wire", "Model", "JSON", "ReadModels", "Support", "Transport", "Archive", "CSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "MultipartKit", package: "multipart-kit"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            exclude: ["Web"],
            swiftSettings: gatewaySettings,
            plugins: ["EmbedWebFiles"]
        ),
        // The Gateway's web files (OpenAPI document, console) compiled into its binary.
        .executableTarget(name: "EmbedFiles", swiftSettings: strict),
        .plugin(name: "EmbedWebFiles", capability: .buildTool(), dependencies: ["EmbedFiles"]),
        .executableTarget(
            name: "Scheduler",
            dependencies: [
                "EventLog", "PostgresStore", "Wire", "Model", "JSON", "Support", "Transport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "Executor",
            dependencies: [
                "Wire", "Model", "JSON", "Transport", "Archive", "ProcessSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // The runner: one child process per instance (or a few in turn), started by an executor.
        .executableTarget(
            name: "Runner",
            dependencies: [
                "FlowLanguage", "Wire", "Model", "JSON", "Archive",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),

        .executableTarget(
            name: "Accord",
            dependencies: [
                "EventLog", "PostgresStore", "ReadModels", "Wire", "Model", "JSON", "Archive", "Certificates",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "TestSupport",
            dependencies: [
                "CZlib", "Archive", "Model", "JSON", "Wire", "PostgresStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ], path: "Tests/TestSupport",
            swiftSettings: strict),
        .testTarget(
            name: "ModelTests", dependencies: ["Model", "JSON", "Support", "TestSupport"], resources: [.copy("Golden")],
            swiftSettings: strict),
        .testTarget(
            name: "EventLogTests", dependencies: ["EventLog", "PostgresStore", "Model", "JSON", "Wire", "TestSupport"],
            exclude: ["Golden"], swiftSettings: strict),
        .testTarget(name: "WireTests", dependencies: ["Wire", "Model", "JSON", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "ReadModelsTests", dependencies: ["ReadModels", "Model", "JSON", "TestSupport"], swiftSettings: strict
        ),
        .testTarget(
            name: "ProcessSupportTests", dependencies: ["ProcessSupport", "Support", "TestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "FlowLanguageTests", dependencies: ["FlowLanguage", "Model", "JSON", "TestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "RunnerTests", dependencies: ["Runner", "FlowLanguage", "Archive", "TestSupport"],
            swiftSettings: strict),
        .testTarget(name: "ArchiveTests", dependencies: ["Archive", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "SchedulerTests",
            dependencies: [
                "Scheduler", "EventLog", "PostgresStore", "Wire", "Model", "JSON", "Transport", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "ExecutorTests",
            dependencies: [
                "Executor", "Wire", "Model", "JSON", "Transport", "Archive", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway", "Wire", "Model", "JSON", "ReadModels", "Archive", "TestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: gatewaySettings),
        .testTarget(
            name: "TransportTests", dependencies: ["Transport", "CNNG", "TestSupport", "Certificates"],
            swiftSettings: strict),
        .testTarget(
            name: "IntegrationTests", dependencies: ["EventLog", "Model", "TestSupport"], swiftSettings: strict),
    ]
)
