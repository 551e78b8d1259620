import CNNG

/// Finding one endpoint's statistics in an `nng_stats_get` snapshot.
///
/// Not `nng_stat_find_dialer` / `nng_stat_find_listener`: in libnng 1.5.2 their search matches the
/// root by name and id, but every level below by name alone (`nng_stat_find_scope` recurses with
/// `nng_stat_find`), so they answer the process's first dialer or listener whatever is asked. Read
/// through them, the watchdog judged each endpoint by another's counters: a listener looked
/// suspect whenever any other listener's peer hung up, and a dialer with a pipe could read as one
/// without (the "listener pipes=0 while the client has its pipe" seen in diagnoses).
enum NNGStats {
    static func dialer(_ stats: OpaquePointer, _ dialer: nng_dialer) -> OpaquePointer? {
        scope(stats, "dialer", id: nng_dialer_id(dialer))
    }

    static func listener(_ stats: OpaquePointer, _ listener: nng_listener) -> OpaquePointer? {
        scope(stats, "listener", id: nng_listener_id(listener))
    }

    /// The scope named `name` whose `id` statistic is `id`, anywhere in the tree.
    static func scope(_ node: OpaquePointer, _ name: String, id: Int32) -> OpaquePointer? {
        if nng_stat_type(node) == Int32(NNG_STAT_SCOPE.rawValue), String(cString: nng_stat_name(node)) == name,
            let idStat = child(node, "id"), Int32(truncatingIfNeeded: nng_stat_value(idStat)) == id
        {
            return node
        }
        var current = nng_stat_child(node)
        while let stat = current {
            if let found = scope(stat, name, id: id) { return found }
            current = nng_stat_next(stat)
        }
        return nil
    }

    /// A direct child of `node` named `name`.
    static func child(_ node: OpaquePointer, _ name: String) -> OpaquePointer? {
        var current = nng_stat_child(node)
        while let stat = current {
            if String(cString: nng_stat_name(stat)) == name { return stat }
            current = nng_stat_next(stat)
        }
        return nil
    }
}
