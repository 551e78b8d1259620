import Foundation
import TestSupport
import Testing

/// Attachments on the real binaries: the files an instance leaves under `_attachments/` are kept
/// when it ends, listed and downloaded as the reference server serves them.
@Suite(.serialized) struct AttachmentTests {
    func names(_ deployment: Deployment, _ id: String) async throws -> [String] {
        let (status, data) = try await deployment.request("GET", "/api/v1/process/\(id)/attachment")
        #expect(status == 200)
        return (try JSONSerialization.jsonObject(with: data) as? [String]) ?? ["(not a list of names)"]
    }

    @Test func filesUnderAttachmentsAreKeptListedAndDownloaded() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flow = """
                main:
                - script: sh
                  body: |
                    mkdir -p _attachments/sub _attachments/empty
                    printf 'hello report' > _attachments/report.txt
                    printf '{"a":1}' > _attachments/sub/data.json
                    ln -s /etc/passwd _attachments/link
                    printf 'not kept' > elsewhere.txt
                - throw: done writing
                """
            let id = try await deployment.startInstance(ZipBuilder.payload(flow))
            let final = try await deployment.waitTerminal(id)
            #expect(final["status"] as? String == "FAILED", "a failed instance keeps its attachments too")
            #expect(try await names(deployment, id) == ["report.txt", "sub/data.json"], "symbolic links are left out")

            let (status, body) = try await deployment.request("GET", "/api/v1/process/\(id)/attachment/report.txt")
            #expect(status == 200)
            #expect(String(decoding: body, as: UTF8.self) == "hello report")
            let (nested, json) = try await deployment.request("GET", "/api/v1/process/\(id)/attachment/sub/data.json")
            #expect(nested == 200 && String(decoding: json, as: UTF8.self) == #"{"a":1}"#)

            for missing in ["missing.txt", "link", "elsewhere.txt", "sub", "sub/"] {
                let (code, _) = try await deployment.request("GET", "/api/v1/process/\(id)/attachment/\(missing)")
                #expect(code == 404 || code == 400, "\(missing) answered \(code)")
            }
            let (unknown, _) = try await deployment.request(
                "GET", "/api/v1/process/\(UUID().uuidString.lowercased())/attachment")
            #expect(unknown == 404)
            let (_, types) = try await deployment.request("GET", "/api/v1/process/\(id)/events")
            #expect(String(decoding: types, as: UTF8.self).contains("AttachmentsStored"))
        }
    }

    @Test func anInstanceWithoutAttachmentsListsNone() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let id = try await deployment.startInstance(helloZip())
            _ = try await deployment.waitTerminal(id)
            #expect(try await names(deployment, id) == [])
            let (code, _) = try await deployment.request("GET", "/api/v1/process/\(id)/attachment/anything")
            #expect(code == 404)
        }
    }

    /// Attachments are held to the instance's log limit: over it, none are kept, and the log says why.
    @Test func attachmentsOverTheLimitAreRefusedWhole() async throws {
        try await withDeployment { deployment in
            deployment.executorArguments = ["--max-log-bytes", "4096"]
            try await deployment.startAll()
            let flow = """
                main:
                - script: sh
                  body: |
                    mkdir -p _attachments
                    printf 'small' > _attachments/a.txt
                    head -c 10000 /dev/zero > _attachments/big.bin
                """
            let id = try await deployment.startInstance(ZipBuilder.payload(flow))
            #expect(try await deployment.waitTerminal(id)["status"] as? String == "FINISHED")
            #expect(try await names(deployment, id) == [])
            #expect(try await deployment.log(id).contains("hold more than 4096 bytes; none were kept"))
        }
    }
}
