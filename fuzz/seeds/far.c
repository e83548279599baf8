/* A member far out: DWARF gives its offset in eight bytes (DW_FORM_data8), where a fuzzer
 * (or a hostile file) can put offsets that overflow when nested ones are added up. The
 * dwarf seed kernel-far-member.elf (fuzz/seeds/make-seeds); src/generate/dwarf.rs's tests
 * patch it. */
struct far_out {
	char pad[0x123456789aUL];
	struct { int a; int deep; };
};
struct far_out *a_far_out;

void _start(void) {}
