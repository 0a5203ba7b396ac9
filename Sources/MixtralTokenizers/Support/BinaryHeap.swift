/// A binary max-heap: `pop` returns the greatest element.
struct BinaryHeap<Element: Comparable> {
    private(set) var elements: [Element] = []

    init() {}

    @inline(__always)
    private func areInIncreasingOrder(_ a: Element, _ b: Element) -> Bool { a < b }

    var isEmpty: Bool { elements.isEmpty }

    mutating func reserveCapacity(_ n: Int) { elements.reserveCapacity(n) }

    mutating func removeAll() { elements.removeAll(keepingCapacity: true) }

    mutating func push(_ element: Element) {
        elements.append(element)
        var child = elements.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if !areInIncreasingOrder(elements[parent], elements[child]) { break }
            elements.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard !elements.isEmpty else { return nil }
        let last = elements.count - 1
        elements.swapAt(0, last)
        let top = elements.removeLast()
        var parent = 0
        let count = elements.count
        while true {
            let left = 2 * parent + 1
            if left >= count { break }
            var largest = left
            let right = left + 1
            if right < count && areInIncreasingOrder(elements[left], elements[right]) { largest = right }
            if !areInIncreasingOrder(elements[parent], elements[largest]) { break }
            elements.swapAt(parent, largest)
            parent = largest
        }
        return top
    }
}
