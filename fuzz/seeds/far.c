/* Shapes for the DWARF reader's unit tests, which patch the binary gcc -g makes of this
 * file (the dwarf seed far-member-x86_64.elf, by fuzz/seeds/make-seeds).
 *
 * A member far out: DWARF gives its offset in eight bytes (DW_FORM_data8), where a fuzzer
 * (or a hostile file) can put offsets that overflow when nested ones are added up. */
struct far_out {
	char pad[0x123456789aUL];
	struct { int a; int deep; };
};
struct far_out *a_far_out;

/* Two anonymous members: the unit tests point their types back at `struct twice`. */
struct twice {
	struct { int a; };
	struct { int b; };
};
struct twice *a_twice;

/* An array: the unit tests make it its own element type. */
struct arrays { int row[4]; };
struct arrays *a_arrays;

void _start(void) {}
