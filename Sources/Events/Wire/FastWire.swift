/// Hand-written JSON for the messages every instance sends several times (an executor's reports):
/// the same text `Codable` writes and reads, without its generic machinery, which was a tenth of
/// the executor's and the Scheduler's CPU under load. `Codable` stays the reference and the
/// fallback: a test checks both ways on every kind of report.
package enum FastWire {
    /// The header JSON of `ExecutorRequest.reports`, or nil when a value is not one this writes
    /// exactly as `JSONEncoder` does (a floating-point number).
    package static func reportsHeader(executorID: ExecutorID, reports: [Report]) -> [UInt8]? {
        var out = JSONWriter()
        out.bytes.reserveCapacity(128 + reports.count * 160)
        out.open()
        out.key("reports")
        out.open()
        out.key("executorID")
        out.string(executorID.rawValue)
        out.key("reports")
        out.bytes.append(UInt8(ascii: "["))
        for (index, report) in reports.enumerated() {
            if index > 0 { out.bytes.append(UInt8(ascii: ",")) }
            out.open()
            out.key("at")
            out.int(report.at.millis)
            out.key("instanceID")
            out.string(report.instanceID.description)
            out.key("kind")
            out.open()
            switch report.kind {
            case .started:
                out.key("started")
                out.open()
                out.close()
            case .log(let lines):
                out.key("log")
                out.open()
                out.key("lines")
                out.logLines(lines)
                out.close()
            case .steps(let records):
                out.key("steps")
                out.open()
                out.key("records")
                out.stepRecords(records)
                out.close()
            case .finished(let values):
                out.key("finished")
                out.open()
                out.key("out")
                guard out.object(values) else { return nil }
                out.close()
            case .failed(let error, let values):
                out.key("failed")
                out.open()
                out.key("error")
                out.string(error)
                out.key("out")
                guard out.object(values) else { return nil }
                out.close()
            }
            out.close()
            out.key("seq")
            out.uint(report.seq)
            out.close()
        }
        out.bytes.append(UInt8(ascii: "]"))
        out.close()
        out.close()
        return out.bytes
    }
}

/// A message `WireFrame` writes and reads by hand when it can (the per-instance messages):
/// `fastHeader` is the JSON `Codable` would write, or nil to let `Codable` write it.
package protocol FastWireEncodable {
    var fastHeader: [UInt8]? { get }
}

/// A message `WireFrame` reads by hand when it can: nil lets `JSONDecoder` read it.
package protocol FastWireDecodable {
    static func fastDecode(_ header: ArraySlice<UInt8>) -> Self?
}

extension ExecutorRequest: FastWireEncodable {
    package var fastHeader: [UInt8]? {
        guard case .reports(let executorID, let reports) = self else { return nil }
        return FastWire.reportsHeader(executorID: executorID, reports: reports)
    }
}

extension SchedulerRequest: FastWireEncodable {
    /// `start`, which every start sends.
    package var fastHeader: [UInt8]? {
        guard case .start(let start) = self else { return nil }
        var out = JSONWriter()
        out.open()
        out.key("start")
        out.open()
        out.key("_0")
        out.open()
        out.key("arguments")
        guard out.object(start.arguments) else { return nil }
        if let entryPoint = start.entryPoint {
            out.key("entryPoint")
            out.string(entryPoint)
        }
        if let key = start.idempotencyKey {
            out.key("idempotencyKey")
            out.string(key)
        }
        out.key("out")
        out.strings(start.out)
        if let principal = start.principal {
            out.key("principal")
            out.string(principal)
        }
        out.key("requestID")
        out.string(start.requestID.rawValue)
        out.key("tags")
        out.strings(start.tags)
        if let timeout = start.timeoutMillis {
            out.key("timeoutMillis")
            out.int(timeout)
        }
        out.close()
        out.close()
        out.close()
        return out.bytes
    }
}

extension SchedulerReply: FastWireEncodable {
    /// `started`, the answer to every start.
    package var fastHeader: [UInt8]? {
        guard case .started(let id, let created, let seq) = self else { return nil }
        var out = JSONWriter()
        out.open()
        out.key("started")
        out.open()
        out.key("created")
        out.bool(created)
        out.key("instanceID")
        out.string(id.description)
        out.key("seq")
        out.uint(seq)
        out.close()
        out.close()
        return out.bytes
    }
}

extension ExecutorCommand: FastWireEncodable {
    /// `dispatch`, sent once per instance.
    package var fastHeader: [UInt8]? {
        guard case .dispatch(let dispatch) = self else { return nil }
        var out = JSONWriter()
        out.open()
        out.key("dispatch")
        out.open()
        out.key("_0")
        out.open()
        out.key("arguments")
        guard out.object(dispatch.arguments) else { return nil }
        out.key("attempt")
        out.int(Int64(dispatch.attempt))
        if let entryPoint = dispatch.entryPoint {
            out.key("entryPoint")
            out.string(entryPoint)
        }
        out.key("instanceID")
        out.string(dispatch.instanceID.description)
        out.key("out")
        out.strings(dispatch.out)
        out.close()
        out.close()
        out.close()
        return out.bytes
    }
}
