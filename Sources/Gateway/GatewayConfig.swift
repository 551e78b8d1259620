import Model
import Wire

/// Everything the Gateway reads from its command line, with the defaults documented in the README.
struct GatewayConfig: Sendable {
    /// HTTP host to bind.
    var host: String
    /// HTTP port.
    var port: Int
    /// The data folder (`keys` file, and this gateway's rebuildable cache under `gateway-<port>/`).
    var dataDirectory: String
    /// The Scheduler's command socket.
    var schedulerURL: String
    /// The Scheduler's event publication.
    var eventsURL: String
    /// Keys file: one key or `sha256:<hex>` hash per line.
    var keysFile: String
    /// Extra keys from the environment (`ACCORD_API_KEYS`, comma-separated).
    var environmentKeys: [String]
    /// Whether requests need a key (on unless explicitly turned off).
    var authEnabled: Bool
    /// Largest request body.
    var maxBodyBytes: Int
    /// Largest unpacked archive.
    var maxUnpackedBytes: Int
    /// Most entries in an archive.
    var maxEntries: Int
    /// How long a command may wait for the Scheduler before the client gets 503.
    var schedulerTimeout: Duration
    /// Longest a request may take to arrive, from its first header byte to the body's end; a
    /// client slower than this is cut off.
    var requestReadTimeout: Duration = .seconds(60)
    /// An open connection with no request in progress is closed after this long (also bounds
    /// how long a request's headers may take).
    var idleTimeout: Duration = .seconds(30)
}
