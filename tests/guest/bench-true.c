/* The smallest program bench-fork can exec: exits 0 at once (a static /bin/true). */
int main(void)
{
    return 0;
}
