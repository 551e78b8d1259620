import Model

/// One API key as the log records it: never its secret, and its hash only for the Gateway's
/// lookup (no answer shows it).
package struct KeyView: Sendable, Hashable {
    package var id: KeyID
    package var name: String
    package var team: String?
    package var admin: Bool
    package var createdAt: Timestamp
    /// Lower-case hex SHA-256 of the secret.
    package var hash: String
    package var createdBy: String?
    /// When it was revoked; a revoked key is refused and no longer listed.
    package var revokedAt: Timestamp?
}

/// The keys read model: a fold of the `ApiKey*` events, what every Gateway authenticates with and
/// what the tooling names starters by. Idempotent and order-tolerant like `StatusProjection`.
package struct KeyProjection: Sendable {
    package private(set) var keys: [KeyID: KeyView] = [:]
    /// Live keys by the hash of their secret.
    private var byHash: [String: KeyID] = [:]
    package private(set) var head: UInt64 = 0

    package init() {}

    package mutating func apply(_ envelope: EventEnvelope) {
        guard envelope.seq > head else { return }
        head = envelope.seq
        let id = envelope.instanceID
        switch envelope.event {
        case .apiKeyCreated(let created):
            guard keys[id] == nil else { return }
            keys[id] = KeyView(
                id: id, name: created.name, team: created.team, admin: created.admin, createdAt: envelope.at,
                hash: created.hash, createdBy: created.createdBy)
            byHash[created.hash] = id
        case .apiKeyRevoked:
            guard var key = keys[id], key.revokedAt == nil else { return }
            key.revokedAt = envelope.at
            keys[id] = key
            if byHash[key.hash] == id { byHash[key.hash] = nil }
        default:
            return
        }
    }

    /// The live key whose secret hashes to `hash`.
    package func live(hash: String) -> KeyView? { byHash[hash].flatMap { keys[$0] } }

    /// The key with this id, revoked or not.
    package func key(_ id: KeyID) -> KeyView? { keys[id] }

    /// Keys not revoked, oldest first.
    package var live: [KeyView] {
        keys.values.filter { $0.revokedAt == nil }.sorted { ($0.createdAt, $0.name) < ($1.createdAt, $1.name) }
    }

    /// The name of a recorded key for a principal (a key id), for the tooling.
    package func name(ofPrincipal principal: String) -> String? {
        KeyID(principal).flatMap { keys[$0]?.name }
    }
}
