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
        .executable(name: "accord", targets: ["Accord"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // System libraries: Debian's libnng-dev has no nng.pc, so its module map links by name.
        .systemLibrary(name: "CNNG", path: "Sources/CNNG"),
        .systemLibrary(name: "CYAML", path: "Sources/CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // The two glibc calls that need _GNU_SOURCE (atomic close-on-exec pipes, closefrom at spawn).
        .target(name: "CSupport", path: "Sources/CSupport"),

        // The shared vocabulary: ids, events, wire messages, the event log and the projections.
        .target(
            name: "Events",
            dependencies: ["CZlib"],
            swiftSettings: strict
        ),
        // nng sockets bridged to async/await.
        .target(
            name: "Transport", dependencies: ["CNNG", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // A ZIP reader for untrusted archives: limits are checked while reading.
        .target(name: "Archive", dependencies: ["CZlib"], swiftSettings: strict),

        .executableTarget(
            name: "Gateway",
            dependencies: [
                "Events", "Transport", "Archive",
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
            ],
            swiftSettings: gatewaySettings
        ),
        .executableTarget(
            name: "Scheduler",
            dependencies: [
                "Events", "Transport",
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
                "Events", "Transport", "Archive", "CYAML", "CSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        .executableTarget(
            name: "Accord",
            dependencies: [
                "Events", "Archive", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "EventsTests", dependencies: ["Events", "TestSupport"], resources: [.copy("Golden")],
            swiftSettings: strict),
        .target(
            name: "TestSupport", dependencies: ["CZlib", "Archive", "Events"], path: "Tests/TestSupport",
            swiftSettings: strict),
        .testTarget(name: "ArchiveTests", dependencies: ["Archive", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "SchedulerTests",
            dependencies: [
                "Scheduler", "Events", "Transport", "TestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "ExecutorTests",
            dependencies: [
                "Executor", "Events", "Transport", "Archive", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "GatewayTests", dependencies: ["Gateway", "Archive", "TestSupport"], swiftSettings: gatewaySettings),
        .testTarget(
            name: "TransportTests", dependencies: ["Transport", "Events", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "IntegrationTests", dependencies: ["Events", "TestSupport"], swiftSettings: strict),
    ]
)
